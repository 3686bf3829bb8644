"""DOCX: headings, paragraphs, list items and table rows in document order, read as a stream.

The zip guards refuse a decompression bomb from the zip's directory before
anything is inflated; then `word/document.xml` is parsed as a stream
(lxml's iterparse) and each paragraph is let go once read, so the work is
bounded as it happens, by the elements parsed, the characters kept and the
time taken, instead of python-docx building the whole tree first. Heading
styles ("Heading 1", "Title") become headings, numbered or bulleted
paragraphs list items, and each table row is written with its header row's
labels. The title and keywords of `docProps/core.xml` are the document's.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import ingest.loaders.limits as limits
from ingest.loaders.document import BlockKind, Document, LoadError, TextBuilder, labelled_row
from ingest.loaders.limits import TextBudget

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_HEADING_STYLE = re.compile(r"heading\s*([1-9])", re.I)
_CORE = {
    "title": "{http://purl.org/dc/elements/1.1/}title",
    "keywords": "{http://schemas.openxmlformats.org/package/2006/metadata/core-properties}keywords",
}


def read_docx(path: Path, source: str) -> Document:
    """One .docx as a structured document.

    Raises:
        LoadError: Not a valid .docx, a decompression bomb, or more XML, elements or text than a document has.
    """
    budget = TextBudget(path.stat().st_size)
    try:
        _check_unzipped_size(path)
        with zipfile.ZipFile(path) as archive:
            builder = TextBuilder(take=budget.take)
            with archive.open("word/document.xml") as xml:
                _Body(builder, budget).read(_CountedXml(xml))
            title, tags = _core_properties(archive)
    except LoadError:
        raise
    except Exception as exc:  # damaged zips and XML raise many kinds (zlib.error, XMLSyntaxError, KeyError, ...)
        raise LoadError(f"not a valid .docx file ({type(exc).__name__}: {exc})") from None
    return builder.document(source, source, title=title, tags=tags)


class _Body:
    """Streams `word/document.xml`: a block per top-level paragraph, a row per table row."""

    def __init__(self, builder: TextBuilder, budget: TextBudget) -> None:
        self.builder = builder
        self.budget = budget
        self.tables: list[dict] = []  # open tables: {"header": [...], "row": [...], "rows": n}
        self.elements = 0
        self.paragraphs = 0

    def read(self, xml) -> None:
        from lxml import etree

        events = etree.iterparse(xml, events=("start", "end"), resolve_entities=False, huge_tree=False)
        for event, element in events:
            if event == "start":
                self.elements += 1
                if self.elements > limits.MAX_DOCX_ELEMENTS:
                    raise LoadError(
                        f"refused: more than {limits.MAX_DOCX_ELEMENTS:,} XML elements in word/document.xml; "
                        "split it into smaller files"
                    )
                if self.elements % 10_000 == 0:
                    self.budget.check_time()
                if element.tag == f"{_W}tbl":
                    self.tables.append({"header": None, "row": [], "cell": [], "rows": 0})
                continue
            self._end(element)

    def _end(self, element) -> None:
        tag = element.tag
        if tag == f"{_W}p":
            self.paragraphs += 1
            if self.paragraphs > limits.MAX_DOCX_PARAGRAPHS:
                raise LoadError(
                    f"refused: more than {limits.MAX_DOCX_PARAGRAPHS:,} paragraphs in word/document.xml; "
                    "split it into smaller files"
                )
            text = _paragraph_text(element)
            if self.tables:
                self.tables[-1]["cell"].append(text)
            else:
                self._paragraph(element, text)
        elif tag == f"{_W}tc" and self.tables:
            table = self.tables[-1]
            table["row"].append(" ".join(t for t in table["cell"] if t))
            table["cell"] = []
        elif tag == f"{_W}tr" and self.tables:
            self._row(self.tables[-1])
        elif tag == f"{_W}tbl" and self.tables:
            table = self.tables.pop()
            if table["header"] and not table["rows"]:  # a one-row table is content, not a header
                self.builder.add(BlockKind.ROW, "; ".join(cell for cell in table["header"] if cell))
        else:
            return
        if not self.tables or tag == f"{_W}tbl":
            _release(element)

    def _paragraph(self, element, text: str) -> None:
        style = element.find(f"{_W}pPr/{_W}pStyle")
        style = style.get(f"{_W}val", "") if style is not None else ""
        heading = _HEADING_STYLE.search(style)
        if style.lower() == "title" or heading:
            self.builder.add(BlockKind.HEADING, text, int(heading.group(1)) if heading else 1)
            return
        numbering = element.find(f"{_W}pPr/{_W}numPr")
        if numbering is not None or style.lower().startswith("list"):
            depth = numbering.find(f"{_W}ilvl") if numbering is not None else None
            level = int(depth.get(f"{_W}val", "0")) + 1 if depth is not None else 1
            self.builder.add(BlockKind.ITEM, f"• {text}" if text.strip() else "", level)
            return
        self.builder.add(BlockKind.PARAGRAPH, text)

    def _row(self, table: dict) -> None:
        cells = _merged_once(table["row"])
        table["row"] = []
        if not any(cells):
            return
        if table["header"] is None:
            table["header"] = cells
            return
        table["rows"] += 1
        self.builder.add(BlockKind.ROW, labelled_row(table["header"], cells))


class _CountedXml:
    """`word/document.xml` as lxml reads it, refused once more than `MAX_DOCX_XML_BYTES` have been read.

    The zip's directory declares the part's size, and `_check_unzipped_size`
    holds the part to it; counting here bounds the parse itself, whatever the header says.
    """

    def __init__(self, stream) -> None:
        self.stream = stream
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        block = self.stream.read(size if size is not None and size >= 0 else 2**20)
        self.read_bytes += len(block)
        if self.read_bytes > limits.MAX_DOCX_XML_BYTES:
            raise LoadError(_too_much_xml(self.read_bytes))
        return block


def _too_much_xml(size: int) -> str:
    return (
        f"refused: word/document.xml holds more than {size / 2**20:,.0f} MB of XML, more than "
        f"{limits.MAX_DOCX_XML_BYTES / 2**20:,.0f} MB (a decompression bomb?); split it into smaller files"
    )


def _paragraph_text(element) -> str:
    """A paragraph's visible text: its runs' text, tabs and breaks as spaces."""
    parts = []
    for node in element.iter(f"{_W}t", f"{_W}tab", f"{_W}br", f"{_W}cr"):
        parts.append(node.text or "" if node.tag == f"{_W}t" else " ")
    return "".join(parts)


def _release(element) -> None:
    """Let a read element go, and the siblings before it, so memory stays flat however long the document."""
    element.clear()
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


def _merged_once(cells: list[str]) -> list[str]:
    """A row's cells, a merged cell repeated across grid columns said once."""
    out: list[str] = []
    for cell in cells:
        if not out or cell != out[-1] or not cell:
            out.append(cell)
    return out


def _core_properties(archive: zipfile.ZipFile) -> tuple[str, tuple[str, ...]]:
    """The title and keywords a .docx declares (nothing when it has no core properties part)."""
    from lxml import etree

    try:
        info = archive.getinfo("docProps/core.xml")
    except KeyError:
        return "", ()
    if info.file_size > 2**20:
        return "", ()
    root = etree.fromstring(archive.read(info), etree.XMLParser(resolve_entities=False, no_network=True))
    title = root.find(_CORE["title"])
    keywords = root.find(_CORE["keywords"])
    tags = tuple(k.strip() for k in re.split(r"[;,]", keywords.text or "") if k.strip()) if keywords is not None else ()
    return (" ".join((title.text or "").split()) if title is not None else ""), tags


def _check_unzipped_size(path: Path) -> None:
    """Refuse a .docx that unzips to too much, before python-docx reads any of it.

    First from the zip's directory: how many parts, their total unzipped size,
    and each part's compression ratio. Then by inflating every part in 1 MB
    steps, counting, and stopping at once when one holds more than its header
    declares: a lying header would otherwise have zipfile inflate the whole
    part in one call (it cuts the output to the declared size only after).

    Raises:
        LoadError: Too many parts, too large unzipped, or a decompression bomb.
        zipfile.BadZipFile: Not a zip file (the caller reports it as not a valid .docx).
    """
    import zipfile

    if _zip_entries(path) > limits.MAX_ZIP_PARTS:
        raise LoadError(f"refused: more than {limits.MAX_ZIP_PARTS:,} parts in the zip (a .docx has tens)")
    with zipfile.ZipFile(path) as archive:
        parts = archive.infolist()
    body = next((part for part in parts if part.filename == "word/document.xml"), None)
    if body is not None and body.file_size > limits.MAX_DOCX_XML_BYTES:
        raise LoadError(_too_much_xml(body.file_size).replace("more than ", "", 1))
    total = sum(part.file_size for part in parts)
    if total > limits.MAX_UNZIPPED_BYTES:
        raise LoadError(
            f"refused: unzips to {total / 2**20:,.1f} MB, more than {limits.MAX_UNZIPPED_BYTES / 2**20:,.1f} MB "
            "(a decompression bomb?); split it into smaller files"
        )
    for part in parts:
        ratio = part.file_size / max(part.compress_size, 1)
        if part.file_size > limits.RATIO_FROM_BYTES and ratio > limits.MAX_ZIP_RATIO:
            raise LoadError(
                f"refused: its part {part.filename} unzips {ratio:,.0f}-fold to {part.file_size / 2**20:,.0f} MB "
                f"(more than {limits.MAX_ZIP_RATIO}-fold: a decompression bomb?)"
            )
    with open(path, "rb") as raw:
        for part in parts:
            _inflate_within(raw, part)


def _zip_entries(path: Path) -> int:
    """The number of entries a zip's end record declares (0 when there is none: zipfile then refuses it)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 65_557))  # the end record (22 bytes) and the longest comment
        tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return 0
    entries = int.from_bytes(tail[at + 10 : at + 12], "little")
    return limits.MAX_ZIP_PARTS + 1 if entries == 0xFFFF else entries  # 0xFFFF: a Zip64 count, far too many


def _inflate_within(raw, part) -> None:
    """Inflate one part of a zip in bounded steps; refuse it as soon as it holds more than declared."""
    import zipfile
    import zlib

    if part.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise LoadError(f"not a valid .docx file: part {part.filename} uses compression method {part.compress_type}")
    raw.seek(part.header_offset)
    header = raw.read(30)  # the local file header; the data follows its name and extra field
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise LoadError(f"not a valid .docx file: part {part.filename} has no local header")
    raw.seek(
        part.header_offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
    )
    inflater = zlib.decompressobj(-zlib.MAX_WBITS) if part.compress_type == zipfile.ZIP_DEFLATED else None
    step, left, produced = 2**20, part.compress_size, 0
    while left > 0 and produced <= part.file_size:
        block = raw.read(min(step, left))
        if not block:
            break
        left -= len(block)
        if inflater is None:
            produced += len(block)
            continue
        produced += len(inflater.decompress(block, step))
        while inflater.unconsumed_tail and produced <= part.file_size:
            produced += len(inflater.decompress(inflater.unconsumed_tail, step))
    if produced > part.file_size:
        raise LoadError(
            f"refused: its part {part.filename} holds more than the {part.file_size:,} bytes its header declares "
            "(a decompression bomb?)"
        )
