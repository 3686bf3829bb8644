"""DenseIndex: one interface over the exact and the approximate kind, checked against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from index.retrievers.dense import EXACT, DenseIndex, row_dots


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
    assert index.on_disk == (not index.exact)


def test_exact_search_keeps_the_lowest_rows_among_ties_on_the_whole_and_on_any_subset(tmp_path):
    """FAISS alone keeps some other of tied rows; sharded search needs the lowest, as on every subset."""
    vectors = unit(600, 32, seed=3)
    query = unit(1, 32, seed=4)[0]
    tied = np.arange(7, 600, 9)  # 67 rows, all one vector: tied at the cut of a top 20
    vectors[tied] = query * 0.5 + unit(1, 32, seed=5)[0] * 0.5
    vectors[tied] /= np.linalg.norm(vectors[tied], axis=1, keepdims=True)
    DenseIndex.save(tmp_path, vectors, EXACT)
    index = DenseIndex.load(tmp_path, EXACT)
    rows, similarity = index.search(query, 20)
    above = [r for r in rows if r not in set(tied.tolist())]
    assert rows[len(above) :] == tied[: 20 - len(above)].tolist()  # the lowest of the tied rows, in row order
    assert all(similarity[r] > similarity[int(tied[0])] for r in above)
    halves = (np.arange(0, 600, 2), np.arange(1, 600, 2))  # as two shards hold them
    for part in halves:
        part_rows, part_similarity = index.search(query, 20, part)
        truth = row_dots(vectors[part], query)
        assert part_rows == part[np.lexsort((part, -truth))][:20].tolist()
        assert all(part_similarity[r] == similarity[r] for r in part_rows if r in similarity)  # the same bits
    merged = {r: s for part in halves for r, s in index.search(query, 20, part)[1].items()}
    assert sorted(merged, key=lambda r: (-merged[r], r))[:20] == rows


# Two SciFact passages under the fake embedder, and a question whose dot products with them
# differ in float64 but round to the same float32: FAISS ranked the higher row first in the
# whole index and the lower one on its shard, so four shards answered 5 of 1,109 SciFact
# questions differently from one process (bench/shard_equivalence.py), until exact search
# re-scored FAISS's rows itself.
NEAR_TIE_A = bytes.fromhex(
    "faf30c3e0000000000000000f7efbb3df5eb6a3e00000000f7ef3b3d00000000f7ef3b3e00000000f7efbb3dfaf30c3e"
    "f7efbb3df7ef3b3d0000000000000000f7efbb3d00000000f5eb6a3ef7ef3b3df7efbb3dfaf30c3ef7ef3b3e00000000"
    "f7efbb3df7ef3b3d00000000f7ef3b3e00000000f66dd33ef7ef3b3dfaf30c3ef7ef3b3df7ef3b3df7ef3b3df7efbb3d"
    "f7ef3b3dfaf30c3ef7ef3b3df7efbb3d00000000f7ef3b3ef7ef3b3efaf30c3e00000000faf30c3ef7efbb3df7ef3b3d"
    "f7ef3b3df7ef3b3df7efbb3dfaf30c3ef5eb6a3e00000000f7efbb3d0000000000000000f7ef3b3df7efbb3ef7efbb3d"
    "00000000f5eb6a3ef7ef3b3e00000000"
)
NEAR_TIE_B = bytes.fromhex(
    "f7efbb3d0000000000000000f971a43ef7efbb3df7ef3b3df7efbb3d00000000000000000000000000000000faf30c3e"
    "00000000f7ef3b3dfaf30c3ef7efbb3df7efbb3df7ef3b3df7ef3b3df7ef3b3df7efbb3dfa34013f00000000f7ef3b3e"
    "00000000f7ef3b3df5eb6a3ef7ef3b3efaf30c3ef7efbb3d00000000faf30c3ef7ef3b3df7ef3b3df7ef3b3df7ef3b3d"
    "f7ef3b3df7ef3b3d00000000f7ef3b3df7ef3b3dfaf30c3efaf30c3ef7ef3b3df7efbb3df7ef3b3d00000000f7ef3b3d"
    "f7ef3b3df7ef3b3e00000000f7efbb3df7ef3b3d0000000000000000f7ef3b3ef7efbb3df971a43ef7efbb3df7efbb3d"
    "f7ef3b3df7efbb3df5eb6a3ef7ef3b3e"
)


def test_exact_search_breaks_float32_ties_by_row_wherever_the_rows_sit(tmp_path):
    from index.embed.fake import FakeEmbedder

    query = FakeEmbedder().encode(["Insulin effects appetite via ventral tegmental neurons."])[0]
    a, b = np.frombuffer(NEAR_TIE_A, dtype="<f4"), np.frombuffer(NEAR_TIE_B, dtype="<f4")
    assert row_dots(a[None, :], query)[0] == row_dots(b[None, :], query)[0]
    vectors = unit(300, 64, seed=6) * 0.01
    vectors[5], vectors[200], vectors[250] = a, b, query
    DenseIndex.save(tmp_path, vectors, EXACT)
    index = DenseIndex.load(tmp_path, EXACT)
    assert index.search(query, 2)[0] == [250, 5]  # the cut between the tied rows keeps the lower (FAISS: 200)
    assert index.search(query, 3)[0] == [250, 5, 200]
    assert index.search(query, 2, np.arange(100, 300))[0] == [250, 200]  # a shard without row 5
