"""IVF index assembled from parts on disk: lossless merge, recall against exact search, memory-mapped load."""

from __future__ import annotations

import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest

from index.retrievers.parts import IvfPlan, assemble, load_mmap, sample_rows, split, train

DIM = 32


def clustered(count: int, centers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors scattered around random cluster centres (the shape of real embeddings)."""
    points = centers[rng.integers(len(centers), size=count)] + 0.15 * rng.standard_normal((count, DIM))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((40, DIM)) / np.sqrt(DIM)
    return clustered(4000, centers, rng), clustered(200, centers, rng)


def memory_mapped(vectors: np.ndarray, folder: Path) -> np.ndarray:
    """`vectors` as float16 on disk, memory-mapped (the form an index version stores them in)."""
    np.save(folder / "vectors.npy", vectors.astype(np.float16))
    return np.load(folder / "vectors.npy", mmap_mode="r")


def recall_at_10(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)]))


def test_merged_index_finds_the_exact_neighbours(data, tmp_path):
    vectors, queries = data
    plan = IvfPlan(lists=32, codec="SQ8", sample=2000)
    merged = load_mmap(assemble(np.array_split(vectors, 4), tmp_path / "ivf", plan), probes=8)
    exact = faiss.IndexFlatIP(DIM)
    exact.add(vectors)
    _, truth = exact.search(queries, 10)
    _, found = merged.search(queries, 10)
    assert merged.ntotal == len(vectors)
    assert recall_at_10(found, truth) >= 0.9
    _, own = merged.search(vectors[::50], 1)  # ids are global row numbers across parts
    assert np.mean(own[:, 0] == np.arange(0, len(vectors), 50)) >= 0.9


@pytest.mark.parametrize("codec", ["SQ8", "PQ8x4"])
def test_merge_loses_nothing_against_an_index_built_in_memory(data, tmp_path, codec):
    vectors, queries = data
    parts = np.array_split(vectors, 3)
    plan = IvfPlan(lists=16, codec=codec, sample=1500, seed=3)
    merged = load_mmap(assemble(parts, tmp_path / "ivf", plan), probes=4)
    in_memory = train(sample_rows(parts, plan.sample, plan.seed), plan)
    in_memory.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
    in_memory.nprobe = 4
    assert merged.ntotal == in_memory.ntotal
    d_merged, i_merged = merged.search(queries, 10)
    d_memory, i_memory = in_memory.search(queries, 10)
    assert np.array_equal(i_merged, i_memory)
    assert np.allclose(d_merged, d_memory)


def test_merged_folder_can_be_moved_and_is_memory_mapped(data, tmp_path):
    vectors, queries = data
    built = assemble(split(memory_mapped(vectors, tmp_path), 1500), tmp_path / "staging", IvfPlan(lists=8))
    assert sorted(p.name for p in built.parent.iterdir()) == ["lists.ivfdata", "vectors.index"]
    assert index_of(built).ntotal == len(vectors)
    moved = tmp_path / "v-final"
    shutil.move(str(built.parent), moved)  # as a version folder is renamed into place
    index = load_mmap(moved / built.name, probes=8)
    lists = faiss.extract_index_ivf(index).invlists
    assert isinstance(faiss.downcast_InvertedLists(lists), faiss.OnDiskInvertedLists)
    assert index.search(queries[:5], 3)[1].min() >= 0


def test_sample_spans_every_shard_without_repeats():
    vectors = np.arange(300, dtype=np.float32).reshape(100, 3)
    sample = sample_rows(np.array_split(vectors, 3), 60, seed=1)
    rows = sample[:, 0] // 3
    assert len(set(rows)) == 60
    assert rows.min() < 34 and rows.max() >= 67


def test_bad_plans_are_refused():
    with pytest.raises(ValueError, match="codec must be 'SQ8', 'PQ<m>' or 'PQ<m>x<bits>'"):
        IvfPlan(lists=8, codec="flat")
    with pytest.raises(ValueError, match="cannot train 64 lists"):
        train(np.zeros((10, DIM), dtype=np.float32), IvfPlan(lists=64))


def index_of(path: Path) -> faiss.Index:
    return faiss.read_index(str(path), faiss.IO_FLAG_READ_ONLY | faiss.IO_FLAG_ONDISK_SAME_DIR)


def test_split_makes_consecutive_views_of_at_most_the_given_rows(tmp_path):
    vectors = memory_mapped(np.eye(10, dtype=np.float32), tmp_path)
    parts = split(vectors, 4)
    assert [len(s) for s in parts] == [4, 4, 2]
    assert all(isinstance(s, np.memmap) for s in parts)  # nothing read yet
    assert np.array_equal(np.concatenate(parts), vectors)


def test_factory_strings_round_trip():
    plan = IvfPlan.parse("IVF2000,SQ8", sample=128_000)
    assert (plan.lists, plan.codec, plan.sample, plan.factory) == (2000, "SQ8", 128_000, "IVF2000,SQ8")
    assert IvfPlan.parse("IVF16,PQ8x4").codec == "PQ8x4"
    with pytest.raises(ValueError, match="not an IVF factory string: 'Flat'"):
        IvfPlan.parse("Flat")
