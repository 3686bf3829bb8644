"""Large files read by row (index.rowfile): the same arrays and bytes as a memory map, and clear errors."""

from __future__ import annotations

import mmap
import shutil

import numpy as np
import pytest

from index import rowfile
from index.rowfile import ByteFile, RowFile, open_bytes, open_rows

ARRAYS = {
    "float16 rows": np.random.default_rng(0).random((50, 7)).astype(np.float16),
    "int64 column": np.arange(30, dtype=np.int64) * 3,
    "float32 blocks": np.random.default_rng(1).random((6, 3, 2)).astype(np.float32),
}
KEYS = [
    0,
    -1,
    3,
    slice(None),
    slice(2, 5),
    slice(5, 2),
    slice(-4, None),
    slice(None, None, 2),
    [3, 1, 2, 3, 3],
    np.array([0, 1, 2, -1]),
    np.array([], dtype=np.int64),
    np.array([[1, 2], [0, 3]]),
]


@pytest.mark.parametrize("name", ARRAYS)
def test_rows_are_what_a_memory_map_gives(name, tmp_path):
    np.save(tmp_path / "a.npy", ARRAYS[name])
    rows, mapped = RowFile(tmp_path / "a.npy"), np.load(tmp_path / "a.npy", mmap_mode="r")
    assert (len(rows), rows.shape, rows.dtype, rows.ndim) == (len(mapped), mapped.shape, mapped.dtype, mapped.ndim)
    for key in KEYS:
        got, expected = rows[key], mapped[key]
        assert type(got) is (type(expected) if np.ndim(expected) == 0 else np.ndarray), key
        assert got.shape == expected.shape and got.dtype == expected.dtype, key
        assert np.array_equal(got, expected), key
    assert np.array_equal(np.asarray(rows), ARRAYS[name])
    assert np.asarray(rows, dtype=np.float64).dtype == np.float64


def test_a_row_out_of_range_is_an_index_error_naming_the_file(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 2)))
    rows = RowFile(tmp_path / "a.npy")
    for key in (4, -5, [0, 4]):
        with pytest.raises(IndexError, match=r"a\.npy, which has 4 rows"):
            rows[key]
    with pytest.raises(IndexError, match="integer"):
        rows[np.array([0.5])]


def test_a_truncated_array_is_refused_on_opening(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(100))
    (tmp_path / "a.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:-16])
    with pytest.raises(ValueError, match=r"a\.npy holds \d+ bytes, too few for its \(100,\) array"):
        RowFile(tmp_path / "a.npy")


def test_bytes_are_sliced_as_from_a_memory_map(tmp_path):
    data = "ascii, then ünïcode\n".encode() * 10
    (tmp_path / "b").write_bytes(data)
    read = ByteFile(tmp_path / "b")
    assert len(read) == len(data)
    for key in (slice(0, 5), slice(7, 30), slice(-9, None), slice(5, 2), slice(None)):
        assert read[key] == data[key]
    (tmp_path / "empty").write_bytes(b"")
    assert ByteFile(tmp_path / "empty")[0:0] == b""


def test_files_read_after_their_folder_is_deleted(tmp_path):
    # A version replaced by a newer one is deleted while readers still hold it.
    folder = tmp_path / "v"
    folder.mkdir()
    np.save(folder / "a.npy", np.arange(10))
    (folder / "b").write_bytes(b"still here")
    rows, data = RowFile(folder / "a.npy"), ByteFile(folder / "b")
    shutil.rmtree(folder)
    assert rows[[9, 2]].tolist() == [9, 2] and data[0:5] == b"still"


def test_files_under_map_below_are_memory_mapped_and_larger_ones_read_by_row(tmp_path, monkeypatch):
    np.save(tmp_path / "a.npy", np.arange(1000))
    (tmp_path / "b").write_bytes(b"x" * (tmp_path / "a.npy").stat().st_size)
    size = (tmp_path / "b").stat().st_size
    monkeypatch.setattr(rowfile, "MAP_BELOW", size)
    assert isinstance(open_rows(tmp_path / "a.npy"), RowFile) and isinstance(open_bytes(tmp_path / "b"), ByteFile)
    monkeypatch.setattr(rowfile, "MAP_BELOW", size + 1)
    assert isinstance(open_rows(tmp_path / "a.npy"), np.memmap) and isinstance(open_bytes(tmp_path / "b"), mmap.mmap)
    monkeypatch.setattr(rowfile, "MAP_BELOW", 0)
    monkeypatch.setattr(rowfile, "MAPPED", True)  # the benchmark's baseline maps every file
    assert isinstance(open_rows(tmp_path / "a.npy"), np.memmap) and isinstance(open_bytes(tmp_path / "b"), mmap.mmap)
