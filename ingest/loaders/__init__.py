"""Files into text: one `Document` per file, or per record for JSONL collections.

Each reader returns the text that all provenance offsets index into. Plain
text and Markdown keep the file's decoded content unchanged; HTML keeps only
visible text; PDFs keep page boundaries; DOCX keeps paragraphs and table
rows; JSONL (the BEIR layout, `{"_id", "title", "text"}` per line) gives one
document per record. Anything that cannot be read becomes a `Skipped` with
the file's name and a short reason, and the rest of the corpus carries on.

One module per format (`html`, `pdf`, `docx`, `jsonl`), decoding in `text`,
the expansion limits in `limits`, and corpus discovery with its path safety
in `discovery`; this module dispatches by suffix.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import ingest.loaders.limits as limits
from index.records import Skipped
from ingest.loaders.discovery import (
    LINK_OUT,
    QUESTION_SETS,
    SUPPORTED_SUFFIXES,
    corpus_root,
    discover,
    is_outside,
    is_question_set,
)
from ingest.loaders.document import Document, LoadError
from ingest.loaders.docx import read_docx
from ingest.loaders.html import read_html
from ingest.loaders.jsonl import read_jsonl
from ingest.loaders.markdown import read_markdown
from ingest.loaders.pdf import read_pdf
from ingest.loaders.text import decode_text, valid_unicode

# Each reader's version, recorded in the manifest: when a reader changes how it reads a format, the next
# build reads that format's files again even though their bytes did not change.
READERS = {"txt": 1, "md": 2, "html": 2, "pdf": 3, "docx": 2, "jsonl": 1}
_KIND = {".markdown": "md", ".htm": "html"}


def reader_of(source: str) -> str:
    """The reader a file of this name is read with ("pdf", "md", ...; "" for an unsupported name)."""
    suffix = Path(source.split(":", 1)[0]).suffix.lower()
    return _KIND.get(suffix, suffix[1:] if suffix in SUPPORTED_SUFFIXES else "")


__all__ = [
    "LINK_OUT",
    "QUESTION_SETS",
    "READERS",
    "SUPPORTED_SUFFIXES",
    "Document",
    "LoadError",
    "corpus_root",
    "decode_text",
    "discover",
    "is_outside",
    "is_question_set",
    "iter_documents",
    "load_file",
    "read_file",
    "reader_of",
]


def _load(path: Path, source: str) -> tuple[list[Document], list[Skipped]]:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(f"unsupported type {suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    if path.stat().st_size == 0:
        raise LoadError("file is empty")
    if suffix == ".pdf":
        return [_valid(read_pdf(path, source))], []
    if suffix == ".docx":
        return [_valid(read_docx(path, source))], []
    if suffix == ".jsonl":
        return read_jsonl(path, source)
    if suffix in (".html", ".htm") and path.stat().st_size > limits.MAX_HTML_BYTES:
        raise LoadError(
            f"refused: {path.stat().st_size / 2**20:,.0f} MB of HTML, more than {limits.MAX_HTML_BYTES / 2**20:,.0f} MB "
            "(a saved web page has a few); split it into smaller files"
        )
    data = path.read_bytes()
    if not data:  # emptied since the size check
        raise LoadError("file is empty")
    if suffix in (".md", ".markdown"):
        return [_valid(read_markdown(data, source))], []
    if suffix in (".html", ".htm"):
        return [_valid(read_html(data, source))], []
    text = decode_text(data)
    return [Document(source, source, valid_unicode(text))], []


def _valid(document: Document) -> Document:
    """`document` with lone surrogates in its text made U+FFFD (one for one, so its offsets hold)."""
    return replace(document, text=valid_unicode(document.text))


def load_file(path: Path, source: str) -> list[Document]:
    """Read one file.

    Args:
        path: The file.
        source: Its path relative to the corpus (used as id and citation).

    Returns:
        One document, or one per record for `.jsonl` (bad records are left out;
        `iter_documents` reports them).

    Raises:
        LoadError: The file cannot be read as text, with the reason.
    """
    return _load(path, source)[0]


def iter_documents(corpus: Path) -> Iterator[Document | Skipped]:
    """Every document in the corpus, and a `Skipped` for each file or record that failed.

    A document is known by its source file and its id together (for a JSONL
    record, its `_id`; a record id repeated within one file is skipped).
    """
    root = corpus_root(corpus)
    badly_named: list[Skipped] = []
    paths = discover(corpus, rejected=badly_named)
    yield from badly_named
    for path in paths:
        yield from read_file(path, root, corpus.is_dir())


def read_file(path: Path, root: Path, confined: bool = True) -> list[Document | Skipped]:
    """One file's documents, or a `Skipped` for the file or each bad record (blank records left out).

    Bad input never raises.

    Args:
        path: A file found by `discover`.
        root: The corpus root (`corpus_root`), which sources are relative to.
        confined: Refuse a file whose links lead outside `root` (checked again here, where
            it is read, in case it changed since `discover`); False when the corpus is
            this one named file.
    """
    source = path.relative_to(root).as_posix()
    if confined and is_outside(path, root):
        return [Skipped(source, LINK_OUT)]
    try:
        documents, problems = _load(path, source)
    except LoadError as exc:
        return [Skipped(source, str(exc))]
    except PermissionError:
        return [Skipped(source, "permission denied")]
    except OSError as exc:
        return [Skipped(source, f"cannot read: {exc.strerror or exc}")]
    documents = [d for d in documents if d.text.strip()]
    if not documents and not problems:
        return [Skipped(source, "no text found")]
    return [*problems, *documents]
