"""PDF: each page's text layer, with the offset where each page begins."""

from __future__ import annotations

from pathlib import Path

from ingest.loaders.document import LoadError
from ingest.loaders.limits import TextBudget


def read_pdf(path: Path) -> tuple[str, tuple[int, ...]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    budget = TextBudget(path.stat().st_size)
    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise LoadError("encrypted PDF (password required)")
            except (NotImplementedError, PdfReadError) as exc:
                raise LoadError(f"encrypted PDF (cannot decrypt: {exc})") from None
        texts = [budget.take(page.extract_text() or "") for page in reader.pages]
    except LoadError:
        raise
    except Exception as exc:  # pypdf raises many kinds on damaged files
        raise LoadError(f"corrupt or unreadable PDF: {exc}") from None
    if texts and not any(text.strip() for text in texts):
        raise LoadError(f"no text layer in {len(texts)} page(s) (scanned images? run OCR on it first)")
    pages, parts, offset = [], [], 0
    for text in texts:
        pages.append(offset)
        parts.append(text)
        offset += len(text) + 2
    return "\n\n".join(parts), tuple(pages)
