"""Large index files read by row with `pread` instead of memory-mapped, so resident memory stays flat.

A question reads a few hundred scattered rows of a version's large files:
the float16 vector copy, the answer-sentence vectors, the BM25 postings of
its words, a few lines of passages.jsonl. Memory-mapped, every page a
question touched stayed mapped into the process, and with it whatever the
kernel mapped around it: a whole page-cache folio, up to 2 MB, when the file
is in the page cache (as it is after a build or a copy), with
`madvise(MADV_RANDOM)` or without (that advice only stops read-ahead of pages
not cached yet). At a million passages resident memory grew by gigabytes
over a thousand questions. Read with `pread`, a row is copied into the
question's own arrays and freed with them; the file stays in the page cache,
shared, where the kernel manages it. `POSIX_FADV_RANDOM` asks the kernel not
to read ahead around the rows, as `MADV_RANDOM` does for a map.

A file under `MAP_BELOW` is memory-mapped all the same: no more than its
size can stay resident, and a mapped row costs no system call, where reading
by row costs one per run of rows (a few percent of a question's CPU time).
Figures: bench/RESULTS.md, "Speed at the limit: resident memory over 1,000
questions at 1,000,000 passages" and "... at 11,904 passages"
(`bench/million_memory.py`).

An open file keeps its data readable after its folder is renamed or deleted
(a newer version replaced it), as a memory map did. Both classes are
read-only and safe to share between threads (`pread` takes its offset, so
threads never move a shared file position).
"""

from __future__ import annotations

import mmap
import operator
import os
from pathlib import Path

import numpy as np

MAP_BELOW = 64 << 20  # bytes
# Memory-map every file, as the store did before: only bench/million_memory.py sets it, for its baseline.
MAPPED = False


def open_rows(path: Path) -> RowFile | np.ndarray:
    """The .npy array at `path`: read by row (`RowFile`), or memory-mapped if it is small.

    Raises:
        OSError: It cannot be opened.
        ValueError: It is not an array this can read, or is shorter than its header says.
    """
    return np.load(path, mmap_mode="r", allow_pickle=False) if _mapped(path) else RowFile(path)


def open_bytes(path: Path) -> ByteFile | mmap.mmap | bytes:
    """The bytes of the file at `path`: read by range (`ByteFile`), or memory-mapped if it is small."""
    if not _mapped(path):
        return ByteFile(path)
    with open(path, "rb") as handle:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if handle.seek(0, 2) else b""


def _mapped(path: Path) -> bool:
    return MAPPED or os.stat(path).st_size < MAP_BELOW


class _File:
    """An open file read at offsets, with read-ahead advised off."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._handle = open(path, "rb")  # closed when this object is collected
        self._fd = self._handle.fileno()
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_RANDOM)

    def _read_into(self, buffer: memoryview, offset: int) -> None:
        """Fill `buffer` (bytes) with the file's bytes from `offset` on."""
        while buffer:
            # One call fills it, unless it is over 2 GB (Linux reads at most that) or the file was truncated.
            done = os.preadv(self._fd, [buffer], offset)
            if done == 0:
                raise ValueError(f"{self.path} ends at byte {offset}, before the data its header promises")
            buffer, offset = buffer[done:], offset + done


class RowFile(_File):
    """An array in a .npy file, indexed along its first axis as a read-only memory map would be.

    `rows[i]`, `rows[a:b]` and `rows[[i, j, ...]]` return new arrays, read
    with one `pread` per run of consecutive rows; `np.asarray(rows)` reads
    the whole array.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            version = np.lib.format.read_magic(self._handle)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(self._handle)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(self._handle)
            else:
                raise ValueError(f"{self.path} is a .npy file of version {version}; versions 1.0 and 2.0 are read")
            if dtype.hasobject or not shape or (fortran_order and len(shape) > 1):
                raise ValueError(f"{self.path} holds {shape} of {dtype}, not rows of numbers in C order")
            self._offset = self._handle.tell()
            self.shape, self.dtype = tuple(shape), dtype
            self._row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
            size = self._handle.seek(0, 2)
            if size < self._offset + self._row_bytes * shape[0]:
                raise ValueError(f"{self.path} holds {size} bytes, too few for its {shape} array of {dtype}")
        except BaseException:
            self._handle.close()
            raise

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"RowFile({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self._read(0, len(self))
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self._read(start, max(start, stop))
            key = np.arange(start, stop, step)
        elif isinstance(key, (int, np.integer)):
            row = self._row(key)
            return self._read(row, row + 1)[0]
        rows = np.asarray(key)
        if rows.dtype.kind not in "iu":
            raise IndexError(f"rows of {self.path.name} are read by integer, slice or integer array, not {key!r}")
        flat = rows.reshape(-1).astype(np.int64)
        flat = np.where(flat < 0, flat + len(self), flat)
        if len(flat) and (flat.min() < 0 or flat.max() >= len(self)):
            raise IndexError(f"row out of range for {self.path.name}, which has {len(self)} rows")
        ends = [*(np.flatnonzero(np.diff(flat) != 1) + 1).tolist(), len(flat)] if len(flat) else []
        begins = [0, *ends[:-1]] if ends else []
        return self._runs(flat[begins].tolist(), begins, ends).reshape(rows.shape + self.shape[1:])

    def _row(self, key) -> int:
        row = operator.index(key)
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(f"row {key} out of range for {self.path.name}, which has {len(self)} rows")
        return row

    def _read(self, start: int, stop: int) -> np.ndarray:
        """Rows `start` to `stop` (exclusive), in range."""
        return self._runs([start], [0], [stop - start])

    def _runs(self, firsts: list[int], begins: list[int], ends: list[int]) -> np.ndarray:
        """Runs of consecutive rows, one after another: rows `firsts[i]`... land at `begins[i]:ends[i]`."""
        out = np.empty((ends[-1] if ends else 0, *self.shape[1:]), dtype=self.dtype)
        buffer, size = memoryview(out.reshape(-1).view(np.uint8)), self._row_bytes
        for first, begin, end in zip(firsts, begins, ends):
            self._read_into(buffer[begin * size : end * size], self._offset + first * size)
        return out


class ByteFile(_File):
    """A file's bytes, sliced as a memory map would be: `data[a:b]` returns bytes."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._size = self._handle.seek(0, 2)

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"ByteFile({str(self.path)!r}, {self._size} bytes)"

    def __getitem__(self, key: slice) -> bytes:
        if not isinstance(key, slice):
            raise TypeError(f"{self.path.name} is read by slices of bytes, not {key!r}")
        start, stop, step = key.indices(self._size)
        if step != 1:
            raise ValueError(f"{self.path.name} is read by contiguous slices, not with step {step}")
        out = bytearray(max(0, stop - start))
        self._read_into(memoryview(out), start)
        return bytes(out)
