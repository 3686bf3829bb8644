"""DenseIndex: one interface over the exact and the approximate kind, checked against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from index.dense import EXACT, DenseIndex


def unit(count: int, dimensions: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dimensions)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module", params=[EXACT, "IVF40,SQ8"])
def dense(request, tmp_path_factory) -> tuple[DenseIndex, np.ndarray]:
    vectors = unit(3000, 32, seed=0)
    folder = tmp_path_factory.mktemp("dense")
    DenseIndex.save(folder, vectors, request.param)
    return DenseIndex.load(folder, request.param), vectors


def test_kind_follows_the_collection_size():
    assert DenseIndex.kind_for(200_000, 200_000) == EXACT
    assert DenseIndex.kind_for(300_000, 200_000) == "IVF1095,SQ8"


def test_search_is_best_first_with_exact_similarities(dense):
    index, vectors = dense
    query = unit(1, 32, seed=1)[0]
    rows, similarity = index.search(query, 10)
    truth = vectors @ query
    assert len(rows) == 10 and len(set(rows)) == 10
    assert [similarity[r] for r in rows] == sorted((similarity[r] for r in rows), reverse=True)
    tolerance = 1e-6 if index.exact else 2e-3  # the approximate kind re-scores from a float16 copy
    assert np.allclose([similarity[r] for r in rows], truth[rows], atol=tolerance)
    assert np.allclose(index.vectors(rows), vectors[rows], atol=tolerance)


def test_search_within_allowed_rows_scores_only_those(dense):
    index, vectors = dense
    query = unit(1, 32, seed=2)[0]
    allowed = np.array([5, 17, 2999, 400], dtype=np.int64)
    rows, similarity = index.search(query, 10, allowed)
    assert sorted(rows) == sorted(allowed.tolist())  # fewer allowed than asked for: all of them
    assert rows == sorted(rows, key=lambda r: -similarity[r])
    assert index.search(query, 10, np.array([], dtype=np.int64)) == ([], {})


def test_every_vector_is_kept_in_row_order(dense):
    index, vectors = dense
    assert len(index) == index.rows == 3000 and index.dimensions == 32
    assert np.allclose(index.vectors(), vectors, atol=1e-3)
    assert index.memory_mapped == (not index.exact)
