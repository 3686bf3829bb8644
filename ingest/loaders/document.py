"""What a reader returns: a file's (or record's) extracted text with its structure, and the error for a file that cannot be read.

A reader that knows a format's structure (headings, list items, table rows)
builds the text block by block with `TextBuilder`, which records each
block's exact span, so chunking can follow sections and every offset still
indexes the one extracted text that citations quote.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from index.records import Choice


class LoadError(Exception):
    """A file that cannot be turned into text; the message says why."""


class BlockKind(Choice):
    """What a block of a document is."""

    HEADING = "heading"
    PARAGRAPH = "paragraph"
    ITEM = "item"  # a list item, written with its bullet or number
    ROW = "row"  # a table row, written with its header's labels

    @classmethod
    def what(cls) -> str:
        return "block kind"


@dataclass(frozen=True)
class Block:
    """One block of a document's text: `document.text[start:end]`.

    Attributes:
        kind: Heading, paragraph, list item or table row.
        start / end: Its characters in the document's text.
        level: A heading's level (1 for the title, 2 for a section, ...); 0 otherwise.
    """

    kind: BlockKind
    start: int
    end: int
    level: int = 0


@dataclass(frozen=True)
class Document:
    """Extracted text of one file or record, and where it came from.

    Attributes:
        doc_id: The relative path for files; the record `_id` for JSONL records.
        source: Path relative to the corpus folder, with `/` separators.
        text: The extracted text; all passage offsets index into it.
        pages: PDFs only: `pages[i]` is the offset where page i+1 begins.
        title: The record's or the document's own title (front matter, `<title>`), when it has one.
        blocks: The text's structure, in order, when the reader knows it (empty: plain text).
        tags: The document's own tags or keywords (markdown front matter, HTML meta).
        notes: What a person should know about how it was read ("page 7 read by OCR").
    """

    doc_id: str
    source: str
    text: str
    pages: tuple[int, ...] = ()
    title: str = ""
    blocks: tuple[Block, ...] = ()
    tags: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def page_at(self, offset: int) -> int | None:
        """1-based page holding `offset`, or None for documents without pages."""
        return bisect.bisect_right(self.pages, offset) if self.pages else None


# Consecutive list items (and table rows) are one line each; any other two
# blocks are a paragraph apart, as the plain-text path reads paragraphs.
_LINE_JOINED = frozenset({BlockKind.ITEM, BlockKind.ROW})


@dataclass
class TextBuilder:
    """Builds a document's text from blocks, recording each block's exact span.

    Each block's text is put on one line (runs of whitespace, line breaks
    included, become one space), so a PDF's line-per-word text or a
    paragraph wrapped in the source reads as the sentence it is.

    Attributes:
        take: Called with each piece of text added (a `TextBudget.take`), so a reader is stopped part way.
    """

    take: object = None
    parts: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)
    length: int = 0
    _page_pending: bool = False

    def page(self) -> None:
        """Start a new page: the next block begins it."""
        self._page_pending = True
        self.pages.append(self._next_start())

    def add(self, kind: BlockKind, text: str, level: int = 0) -> None:
        """Append a block; blank text adds nothing."""
        text = " ".join(text.split())
        if not text:
            return
        separator = self._separator(kind)
        if self.take is not None:
            self.take(separator + text)  # type: ignore[operator]
        self.parts.append(separator)
        start = self.length + len(separator)
        self.parts.append(text)
        self.length = start + len(text)
        self.blocks.append(Block(kind, start, self.length, level))
        self._page_pending = False

    def _separator(self, kind: BlockKind) -> str:
        if not self.blocks:
            return ""
        if not self._page_pending and kind in _LINE_JOINED and self.blocks[-1].kind is kind:
            return "\n"
        return "\n\n"

    def _next_start(self) -> int:
        return self.length + (2 if self.blocks else 0)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def document(self, doc_id: str, source: str, **fields) -> Document:
        """The document built so far (`fields`: title, tags, notes)."""
        pages = tuple(min(p, self.length) for p in self.pages)
        return Document(doc_id, source, self.text, pages, blocks=tuple(self.blocks), **fields)


def labelled_row(header: list[str], cells: list[str]) -> str:
    """A table row as a sentence of its own: each cell after its column's label ("Before meals: 4 to 7")."""
    labelled = []
    for i, cell in enumerate(cells):
        label = header[i].strip() if i < len(header) else ""
        cell = cell.strip()
        if not cell:
            continue
        labelled.append(f"{label}: {cell}" if label and label != cell else cell)
    return "; ".join(labelled)
