"""Passages on disk: read by row, and found by document or source, without one Python object per passage.

A version's passages stay in `passages.jsonl` (line i is passage i);
`passage_rows.npy` holds the byte offset where each line begins, so reading
passage i reads and parses one line (as bm25s's `JsonlCorpus` does, here
with `pread`: `index.rowfile`). A million passages then cost no memory
beyond the lines a question reads instead of a million objects, and loading
an index reads none of them.

`locations.npy` answers the questions search asks of all passages at once,
"which passages lie around this one in its document" (context) and "which
passages come from these files" (a search restricted to some sources): one
row per location, sorted by source, document and start, with the passage
row it belongs to. Sources and documents are keyed by a 64-bit hash of their
names (two names of a collection share one with odds of about 2^-64 per
pair; context reads its neighbours' names anyway and drops any stranger).
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from index.records import Passage
from index.rowfile import RowFile, open_bytes

# Columns of the location table (stored column by column, so each is contiguous on disk).
SOURCE, DOCUMENT, START, ROW = range(4)


def name_key(name: str) -> int:
    """A 64-bit key for a source or document name, as a signed integer (the table's type)."""
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def passage_line(passage: Passage) -> bytes:
    """Passage as its line of passages.jsonl."""
    return (json.dumps(passage.to_json(), ensure_ascii=False) + "\n").encode("utf-8")


def write_passages(out, passages: Sequence[Passage]) -> np.ndarray:
    """Write `passages` as JSON lines to the binary file `out`; returns the offsets of the lines (and of the end)."""
    offsets = np.empty(len(passages) + 1, dtype=np.int64)
    at = 0
    for row, passage in enumerate(passages):
        offsets[row] = at
        line = passage_line(passage)
        out.write(line)
        at += len(line)
    offsets[len(passages)] = at
    return offsets


def location_table(passages: Sequence[Passage]) -> np.ndarray:
    """Every location of every passage as (source key, document key, start, row), sorted; Fortran order."""
    keys: dict[str, int] = {}

    def key(name: str) -> int:
        value = keys.get(name)
        if value is None:
            value = keys[name] = name_key(name)
        return value

    rows = [
        (key(loc.source), key(f"{loc.source}\0{loc.doc_id}"), loc.start, row)
        for row, passage in enumerate(passages)
        for loc in passage.locations
    ]
    table = np.array(rows, dtype=np.int64).reshape(-1, 4)
    order = np.lexsort((table[:, START], table[:, DOCUMENT], table[:, SOURCE]))
    return np.asfortranarray(table[order])


class PassageFile(Sequence[Passage]):
    """The passages of one version, parsed by row from passages.jsonl."""

    def __init__(self, path: Path, offsets: np.ndarray | RowFile) -> None:
        """
        Args:
            path: passages.jsonl.
            offsets: Where each line begins, and where the last ends (passage_rows.npy).
        """
        if len(offsets) < 1:
            raise ValueError("passage offsets are empty")
        # Kept open, the file outlives its folder being renamed or deleted (a newer version replaced it).
        self._data = open_bytes(path)
        if len(self._data) != int(offsets[-1]):
            raise ValueError(f"{path.name} holds {len(self._data)} bytes, its offsets end at {int(offsets[-1])}")
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def line(self, row: int) -> bytes:
        """The raw line of passage `row` (its JSON, newline included)."""
        start, end = self._offsets[row : row + 2].tolist()
        return self._data[start:end]

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        row = operator.index(row)
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(f"passage row {row} out of range (0 to {len(self) - 1})")
        return Passage.from_json(json.loads(self.line(row)))

    def __iter__(self) -> Iterator[Passage]:
        for row in range(len(self)):
            yield self[row]

    def __eq__(self, other) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # mutable-looking sequences are unhashable, like lists

    def __repr__(self) -> str:
        return f"PassageFile({len(self)} passages)"


class LocationTable:
    """Where every passage occurs, sorted by source, document and start (see the module docstring)."""

    def __init__(self, table: np.ndarray) -> None:
        self._table = table

    def __len__(self) -> int:
        return len(self._table)

    def _range(self, column: int, value: int, lo: int, hi: int) -> tuple[int, int]:
        values = self._table[lo:hi, column]
        return lo + int(np.searchsorted(values, value, "left")), lo + int(np.searchsorted(values, value, "right"))

    def document(self, source: str, doc_id: str) -> tuple[np.ndarray, np.ndarray]:
        """The starts and passage rows of a document's locations, in document order."""
        lo, hi = self._range(SOURCE, name_key(source), 0, len(self._table))
        lo, hi = self._range(DOCUMENT, name_key(f"{source}\0{doc_id}"), lo, hi)
        return np.asarray(self._table[lo:hi, START]), np.asarray(self._table[lo:hi, ROW])

    def rows_of_sources(self, sources: Sequence[str]) -> np.ndarray:
        """Sorted unique rows of the passages with a location in any of `sources`."""
        parts = []
        for source in sources:
            lo, hi = self._range(SOURCE, name_key(source), 0, len(self._table))
            parts.append(np.asarray(self._table[lo:hi, ROW]))
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
