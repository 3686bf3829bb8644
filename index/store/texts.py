"""Every document's extracted text, read by row: the text that citations' offsets index.

A version folder keeps them in two files: `texts.bin`, the UTF-8 texts one
after another, and `text_rows.npy`, the byte offset where each begins (one
more than there are documents). Row i is document i of `documents.json`, so a
document is found by its source and id together, as everywhere else (a record
id may repeat in another file). `texts.bin` is read by range
(`index.rowfile`): answering a request for one document reads that document's
bytes, and a version replaced and deleted while it is open still reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index.rowfile import ByteFile, open_bytes

TEXTS = "texts.bin"
TEXT_ROWS = "text_rows.npy"


def write_texts(folder: Path, texts: Sequence[str]) -> None:
    """Write `texts` (row i = document i) into a version folder."""
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    with open(folder / TEXTS, "wb") as out:
        for row, text in enumerate(texts):
            offsets[row + 1] = offsets[row] + out.write(text.encode("utf-8"))
    np.save(folder / TEXT_ROWS, offsets, allow_pickle=False)


class DocumentTexts:
    """The extracted texts of an index's documents, row i = document i."""

    def __init__(self, data: bytes | ByteFile, offsets: np.ndarray) -> None:
        self._data = data
        self._offsets = offsets

    @classmethod
    def load(cls, folder: Path) -> DocumentTexts:
        """Open the texts of a version folder (read by range from disk).

        Raises:
            ValueError: The offsets do not fit the texts file.
        """
        offsets = np.load(folder / TEXT_ROWS, allow_pickle=False)
        data = open_bytes(folder / TEXTS)
        size = len(data)
        if (
            offsets.ndim != 1
            or not len(offsets)
            or offsets[0] != 0
            or offsets[-1] != size
            or np.any(np.diff(offsets) < 0)
        ):
            raise ValueError(f"{TEXT_ROWS} does not match {TEXTS} ({size} bytes)")
        return cls(data, offsets)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def text(self, row: int) -> str:
        """Document `row`'s extracted text."""
        return bytes(self._data[int(self._offsets[row]) : int(self._offsets[row + 1])]).decode("utf-8")
