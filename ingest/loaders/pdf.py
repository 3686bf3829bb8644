"""PDF: the text a person reads, in reading order, as headings, paragraphs and list items, page by page.

pypdfium2 (PDFium, the PDF engine of Chromium) reads each page's text layer
line by line; of the readers compared on real leaflets it alone kept every
answer inside one sentence, and it is the fastest (bench/RESULTS.md,
"Readers compared on real documents"). Lines are then put back together as
a person reads them: running headers and footers (the same line on most
pages) and page numbers go, a line wrapped mid-sentence joins the next, a
word hyphenated across lines is one word again, bullets (including the
symbol-font glyphs that extract as U+FFFD) become list items, and a short
unpunctuated line before a capitalised one is a heading. A page without a
text layer (a scan) is read by OCR (rapidocr-onnxruntime, models shipped in
its wheel) up to `MAX_OCR_PAGES` pages, and the document says which pages.
"""

from __future__ import annotations

import re
import time
import zlib
from collections import Counter
from pathlib import Path

import ingest.loaders.limits as limits
import ingest.loaders.ocr as ocr
from ingest.loaders.document import BlockKind, Document, LoadError, TextBuilder
from ingest.loaders.limits import TextBudget

# Pages read by OCR in one file: 5 to 10 s a page on two cores, so a scanned book is read in part and said so.
MAX_OCR_PAGES = 10

# Bullet glyphs as PDFs carry them; U+FFFD and private-use code points are bullets from symbol fonts.
_BULLET = re.compile(r"^\s*([•●▪■◦○◆►➢✓✔\-–—*·\ufffd\uf0b7\uf0a7\uf076\uf0d8]|o(?=\s))\s*")
_NUMBERED = re.compile(r"^\s*(\d{1,2}|[a-z])[.)]\s+")
_PAGE_NUMBER = re.compile(r"^\s*(page\s*)?\d{1,3}(\s*(of|/)\s*\d{1,3})?\s*$", re.I)
_INLINE_BULLET = re.compile(r"\s+(?=[•●▪■◆►➢✓✔\ufffd\uf0b7\uf0a7]\s)")
_SENTENCE_END = re.compile(r"[.!?:;)\"”’]\s*$")
_WORD = re.compile(r"[^\W_]")
_HEADING_STOP = re.compile(r"[.,;:!?]$")
_NOT_HEADING = re.compile(r"https?://|www\.|@|\d")
_HYPHENATED = re.compile(r"[a-z]-$")


def read_pdf(path: Path, source: str) -> Document:
    """One PDF as a structured document with its pages.

    Raises:
        LoadError: Encrypted, damaged, too many pages, too much text, or no text on any page.
    """
    import pypdfium2 as pdfium

    budget = TextBudget(path.stat().st_size)
    check_streams(path)
    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise LoadError("encrypted PDF (password required)") from None
        raise LoadError(f"corrupt or unreadable PDF: {exc}") from None
    try:
        pages, ocr_pages, empty = _page_lines(pdf, budget)
    finally:
        pdf.close()
    if pages and not any(any(line.strip() for line in lines) for lines in pages):
        raise LoadError(f"no text layer in {len(pages)} page(s) (scanned images, and OCR read nothing)")
    builder = TextBuilder(take=budget.take)
    for lines in strip_running_lines(pages):
        builder.page()
        for kind, text, level in lines_to_blocks(lines):
            builder.add(kind, text, level)
    return builder.document(source, source, notes=_notes(ocr_pages, empty))


def _page_lines(pdf, budget: TextBudget) -> tuple[list[list[str]], list[int], list[int]]:
    """Each page's text lines; pages with no text layer read by OCR while the OCR allowance lasts."""
    import pypdfium2.raw as pdfium_c

    if len(pdf) > limits.MAX_PDF_PAGES:
        raise LoadError(f"refused: {len(pdf):,} pages, more than {limits.MAX_PDF_PAGES:,}; split it into smaller files")
    pages: list[list[str]] = []
    ocr_pages: list[int] = []
    empty: list[int] = []
    objects, reading = 0, 0.0
    for index in range(len(pdf)):
        budget.check_time()
        began = time.monotonic()
        try:
            page = pdf[index]  # PDFium parses the page's content here
            objects += max(0, pdfium_c.FPDFPage_CountObjects(page.raw))
            _check_work(index + 1, objects, reading + time.monotonic() - began)
            text = page.get_textpage().get_text_range()
        except LoadError:
            raise
        except Exception as exc:  # PDFium reports damage per page (a page tree that loops, a missing page)
            raise LoadError(f"corrupt or unreadable PDF: page {index + 1}: {exc}") from None
        reading += time.monotonic() - began
        budget.take(text)
        if not text.strip():
            lines = ocr.read_page(page) if len(ocr_pages) < MAX_OCR_PAGES else []
            (ocr_pages if lines else empty).append(index + 1)
        else:
            lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        pages.append([line.rstrip() for line in lines])
    return pages, ocr_pages, empty


def _check_work(page: int, objects: int, seconds: float) -> None:
    """Refuse a PDF whose pages, read so far, hold too many objects or took too long to read.

    Pages may share one content stream, so a small file can make PDFium parse
    the same megabytes on every page: the work is counted as it is done.
    """
    if objects > limits.MAX_PDF_OBJECTS:
        raise LoadError(
            f"refused: its first {page:,} page(s) hold {objects:,} drawing objects, more than "
            f"{limits.MAX_PDF_OBJECTS:,} (a page has tens to thousands); split it into smaller files"
        )
    if seconds > limits.MAX_PDF_TEXT_SECONDS:
        raise LoadError(
            f"refused: reading the text of its first {page:,} page(s) took more than {limits.MAX_PDF_TEXT_SECONDS} s; "
            "split it into smaller files"
        )


_STREAM = re.compile(rb"stream\r?\n")
# Streams PDFium does not parse as drawing operators: images, embedded fonts, object and cross-reference streams.
_DATA_STREAM = re.compile(
    rb"/Subtype\s*/Image|/Length[123]\b|/Subtype\s*/(Type1C|CIDFontType0C|OpenType)|/Type\s*/(ObjStm|XRef)"
)


def check_streams(path: Path) -> None:
    """Refuse a PDF whose streams inflate to too much, before PDFium reads any of them whole.

    Every stream of the file is measured without parsing the PDF: a Flate
    (zlib) one by inflating it in 1 MB steps and counting, any other by its
    length. A stream of drawing operators (a page's content, a form) may hold
    `MAX_PDF_CONTENT_BYTES`: PDFium keeps each operator as an object, about
    14 times the stream's size, and parses it again for every page that
    shares it. An image, a font or an object stream may hold `MAX_PDF_STREAM_BYTES`;
    all together `MAX_PDF_INFLATED_BYTES`.

    Raises:
        LoadError: A stream, or all together, inflate to too much.
    """
    data = path.read_bytes()
    total, at = 0, 0
    while (found := _STREAM.search(data, at)) is not None:
        start = found.end()
        head = data[max(0, start - 4096) : start]
        head = head[head.rfind(b"obj") + 1 :]
        drawing = _DATA_STREAM.search(head) is None
        limit = limits.MAX_PDF_CONTENT_BYTES if drawing else limits.MAX_PDF_STREAM_BYTES
        size, end = _inflated_size(data, start, limit)
        if size > limit:
            what = "a content stream" if drawing else "a stream"
            raise LoadError(
                f"refused: {what} at byte {start:,} inflates to more than {limit / 2**20:,.0f} MB "
                "(a decompression bomb?); split it into smaller files"
            )
        total += size
        if total > limits.MAX_PDF_INFLATED_BYTES:
            raise LoadError(
                f"refused: its streams inflate to more than {limits.MAX_PDF_INFLATED_BYTES / 2**20:,.0f} MB "
                "(a decompression bomb?); split it into smaller files"
            )
        at = max(end, start)


def _inflated_size(data: bytes, start: int, limit: int) -> tuple[int, int]:
    """The size a zlib stream starting at `start` inflates to (counting stops past `limit`), and where it ends.

    Data that is not a zlib stream (another filter, or no filter) counts 0.
    """
    inflater = zlib.decompressobj()
    produced, fed, step = 0, start, 2**20
    try:
        while fed < len(data) and not inflater.eof and produced <= limit:
            produced += len(inflater.decompress(data[fed : fed + step], step))
            fed += step
            while inflater.unconsumed_tail and not inflater.eof and produced <= limit:
                produced += len(inflater.decompress(inflater.unconsumed_tail, step))
    except zlib.error:  # not Flate: its length up to the end of the stream
        end = data.find(b"endstream", start)
        return (end - start, end) if end >= 0 else (0, start)
    left = len(inflater.unused_data) if inflater.eof else len(inflater.unconsumed_tail)
    return produced, min(fed, len(data)) - left


def _notes(ocr_pages: list[int], empty: list[int]) -> tuple[str, ...]:
    notes = []
    if ocr_pages:
        notes.append(f"{_pages(ocr_pages)} read by OCR")
    if empty:
        if ocr.available():
            notes.append(f"{_pages(empty)}: no text layer and no text found by OCR")
        else:
            notes.append(f"{_pages(empty)}: no text layer; install rapidocr-onnxruntime to read it")
    return tuple(notes)


def _pages(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10]) + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")
    return f"page {shown}" if len(numbers) == 1 else f"pages {shown}"


def _line_key(line: str) -> str:
    return re.sub(r"\d+", "#", " ".join(line.split()).lower())


def strip_running_lines(pages: list[list[str]]) -> list[list[str]]:
    """Pages without their running headers, footers and page numbers.

    A running line is one that, digits ignored, appears on at least half the
    pages with text of a document of three or more (on both of two).
    """
    with_text = [lines for lines in pages if any(line.strip() for line in lines)]
    counts: Counter[str] = Counter()
    for lines in with_text:
        counts.update({_line_key(line) for line in lines if line.strip()})
    need = 2 if len(with_text) == 2 else max(3, (len(with_text) + 1) // 2)
    running = {key for key, n in counts.items() if len(with_text) >= 2 and n >= need and len(key) <= 150}
    return [
        [line for line in lines if _line_key(line) not in running and not _PAGE_NUMBER.match(line)] for lines in pages
    ]


def lines_to_blocks(lines: list[str]) -> list[tuple[BlockKind, str, int]]:
    """One page's lines as blocks `(kind, text, level)`: wrapped lines joined, bullets as items, headings guessed."""
    blocks: list[tuple[BlockKind, str, int]] = []
    kind: BlockKind | None = None
    parts: list[str] = []

    def flush() -> None:
        nonlocal kind, parts
        text = " ".join(parts).strip()
        if kind is not None and _WORD.search(text):
            level = {BlockKind.ITEM: 1, BlockKind.HEADING: 2}.get(kind, 0)
            blocks.append((kind, f"• {text}" if kind is BlockKind.ITEM and not _NUMBERED.match(text) else text, level))
        kind, parts = None, []

    # Bullets run together on one line ("• smoke • drink more than 14 units") are items of their own.
    cleaned = [part for line in lines for part in _INLINE_BULLET.split(" ".join(line.split()))]
    for i, line in enumerate(cleaned):
        if not line:
            flush()
            continue
        bullet = _BULLET.match(line)
        if bullet and len(line) > bullet.end():
            flush()
            kind, parts = BlockKind.ITEM, [line[bullet.end() :]]
            continue
        if _NUMBERED.match(line) and (not parts or _SENTENCE_END.search(parts[-1])):
            flush()
            kind, parts = BlockKind.ITEM, [line]
            continue
        following = next((x for x in cleaned[i + 1 :] if x), "")
        starts_block = not parts or _SENTENCE_END.search(parts[-1]) or kind is BlockKind.HEADING
        if starts_block and _looks_like_heading(line, following):
            flush()
            kind, parts = BlockKind.HEADING, [line]
            flush()
            continue
        list_goes_on = kind is BlockKind.ITEM and (line[:1].islower() or parts[-1].endswith((",", "-", "and", "or")))
        if parts and (kind is BlockKind.PARAGRAPH or list_goes_on) and not _SENTENCE_END.search(parts[-1]):
            _continue_line(parts, line)
            continue
        flush()
        kind, parts = BlockKind.PARAGRAPH, [line]
    flush()
    return blocks


def _continue_line(parts: list[str], line: str) -> None:
    """Join a wrapped line to the block; a word hyphenated at the line end becomes one word."""
    if _HYPHENATED.search(parts[-1]) and line[:1].islower():
        first, _, rest = line.partition(" ")
        parts[-1] = parts[-1][:-1] + first
        if rest:
            parts.append(rest)
    else:
        parts.append(line)


def _looks_like_heading(line: str, following: str) -> bool:
    words = line.split()
    return (
        1 <= len(words) <= 9
        and line[:1].isupper()
        and not _HEADING_STOP.search(line)
        and not _NOT_HEADING.search(line)
        and (following[:1].isupper() or _BULLET.match(following) is not None or following[:1].isdigit())
    )
