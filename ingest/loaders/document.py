"""What a loader returns: a file's (or record's) extracted text, and the error for a file that cannot be read."""

from __future__ import annotations

import bisect
from dataclasses import dataclass


class LoadError(Exception):
    """A file that cannot be turned into text; the message says why."""


@dataclass(frozen=True)
class Document:
    """Extracted text of one file or record, and where it came from.

    Attributes:
        doc_id: The relative path for files; the record `_id` for JSONL records.
        source: Path relative to the corpus folder, with `/` separators.
        text: The extracted text; all passage offsets index into it.
        pages: PDFs only: `pages[i]` is the offset where page i+1 begins.
        title: JSONL records: the record's title.
    """

    doc_id: str
    source: str
    text: str
    pages: tuple[int, ...] = ()
    title: str = ""

    def page_at(self, offset: int) -> int | None:
        """1-based page holding `offset`, or None for documents without pages."""
        return bisect.bisect_right(self.pages, offset) if self.pages else None
