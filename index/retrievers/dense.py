"""Dense retrieval: the passage vectors and the FAISS index over them, behind one class.

`DenseIndex` answers "which passages are closest to this vector" and "what
are these passages' vectors", whatever FAISS structure is underneath, so
search never asks which kind it has. The kind follows the collection's size
(`DenseIndex.kind_for`, see `Settings.exact_search_limit`):

- "Flat": exact inner product (`IndexFlatIP`) over float32 vectors, which
  are also the stored vectors (a view of the index's own storage);
- "IVF<lists>,SQ8": approximate, 8-bit scalar quantized inverted lists,
  assembled from parts on disk and memory-mapped (`index.retrievers.parts`), with a
  float16 copy of the vectors (`vectors.npy`, read by row: `index.rowfile`) from
  which its candidates are re-scored exactly.

Row i is passage i in both.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np

from index.retrievers.parts import LISTS, IvfPlan, Map, assemble, load_mmap, split
from index.rowfile import RowFile, open_rows

EXACT = "Flat"
VECTORS = "vectors.faiss"
VECTOR_COPY = "vectors.npy"
# Lists probed per question: 1/64 of them, at least 32, chosen with bench/scale.py for
# recall@10 >= 0.95 against exact search; 1/64 alone fell short on smaller collections
# (bench/RESULTS.md, "IVF probes").
PROBE_SHARE = 1 / 64
_MIN_PROBES = 32
# Exact search asks FAISS for this many rows past the cut, then re-scores (`DenseIndex._exact_search`).
_EXACT_PAD = 16
# Far above how much float32 dot products of unit vectors can differ with summation order (~1e-6).
_FAISS_ROUNDING = 1e-4
_TRAINING_PER_LIST = 64  # faiss asks for at least 39 points per centroid
# Vectors per part of an approximate index: each is added on its own (a Ray task on
# the Ray path) and the parts' lists are merged on disk; a part fits in memory
# (bench/RESULTS.md, "Parts of an approximate index").
PART_ROWS = 250_000


def nprobe_for(lists: int) -> int:
    """Lists an approximate index probes per question."""
    return min(lists, max(_MIN_PROBES, round(lists * PROBE_SHARE)))


def ivf_plan(kind: str) -> IvfPlan:
    """How an approximate index of factory type `kind` is trained (sample of 64 vectors per list, seed 0)."""
    plan = IvfPlan.parse(kind)
    return replace(plan, sample=_TRAINING_PER_LIST * plan.lists)


class DenseIndex:
    """Unit passage vectors (row i = passage i) and a FAISS index over them, searched by inner product.

    Build one with `save` (which writes it into a version folder) and open it
    with `load`; `kind` is the FAISS factory string recorded in the manifest.
    """

    def __init__(self, kind: str, index: faiss.Index, matrix: np.ndarray) -> None:
        self.kind = kind
        self.faiss = index  # the FAISS index itself, for tests and benchmarks that inspect it
        self._matrix = matrix

    @staticmethod
    def kind_for(passages: int, exact_search_limit: int) -> str:
        """The FAISS factory string for a collection of this size.

        Exact up to `exact_search_limit` passages; above it IVF with about
        2·sqrt(N) lists, which keeps both the list scan and the centroid scan
        near sqrt(N) vectors per probe.
        """
        if passages <= exact_search_limit:
            return EXACT
        return f"IVF{max(1, round(2 * passages**0.5))},SQ8"

    @staticmethod
    def files(kind: str) -> tuple[str, ...]:
        """The files an index of type `kind` consists of in a version folder."""
        return (VECTORS,) if kind == EXACT else (VECTORS, LISTS, VECTOR_COPY)

    @staticmethod
    def save(folder: Path, vectors: np.ndarray, kind: str, parallel_map: Map = map) -> None:
        """Write an index of type `kind` for unit float32 `vectors` into `folder`.

        An approximate index also writes vectors.npy, the float16 copy that both
        its IVF lists and the exact re-scoring come from (so an update that reuses
        it equals a rebuild), and lists.ivfdata: the index is trained on a sample,
        the copy's parts are added by `parallel_map` and their lists merged on
        disk (`index.retrievers.parts`), to be served memory-mapped.
        """
        if kind == EXACT:
            index = faiss.IndexFlatIP(vectors.shape[1])
            index.add(vectors)
            faiss.write_index(index, str(folder / VECTORS))
            return
        np.save(folder / VECTOR_COPY, vectors.astype(np.float16), allow_pickle=False)
        copy = np.load(folder / VECTOR_COPY, mmap_mode="r", allow_pickle=False)
        assemble(split(copy, PART_ROWS), folder, ivf_plan(kind), map_fn=parallel_map, name=VECTORS)

    @classmethod
    def load(cls, folder: Path, kind: str) -> DenseIndex:
        """Open the index of type `kind` in `folder` (an approximate one on disk, with its probes set)."""
        if kind == EXACT:
            index = faiss.read_index(str(folder / VECTORS))
            # A view of the index's own storage: no copy (it lives as long as `index`).
            matrix = faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d)
            return cls(kind, index, matrix)
        index = load_mmap(folder / VECTORS, probes=nprobe_for(IvfPlan.parse(kind).lists))
        return cls(kind, index, open_rows(folder / VECTOR_COPY))

    def __len__(self) -> int:
        return self.faiss.ntotal

    @property
    def rows(self) -> int:
        """Vector rows stored beside the index (equals `len(self)` in a sound version)."""
        return len(self._matrix)

    @property
    def dimensions(self) -> int:
        return self.faiss.d

    @property
    def on_disk(self) -> bool:
        """Whether the vectors are read from disk on demand (the approximate kind's float16 copy)."""
        return isinstance(self._matrix, (RowFile, np.memmap))

    @property
    def exact(self) -> bool:
        """Whether every search is exact (for describing the index; search itself does not need to know)."""
        return self.kind == EXACT

    def vectors(self, rows=slice(None)) -> np.ndarray:
        """The float32 vectors of these passage rows (all of them by default)."""
        return np.asarray(self._matrix[rows], dtype=np.float32)

    def search(
        self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[list[int], dict[int, float]]:
        """The `k` passages closest to `vector`, best first, with their cosine similarities.

        Args:
            vector: A unit query vector.
            k: How many to return (fewer when fewer passages are allowed).
            allowed: Passage rows to restrict to, or None for all.

        Returns:
            Rows best first (ties by row), and each row's similarity: `row_dots`
            for an exact index, the float16 copy's exact score otherwise.
        """
        depth = min(k, len(self) if allowed is None else len(allowed))
        if depth == 0:
            return [], {}
        if self.exact:
            return self._exact_search(vector, depth, allowed)
        if allowed is None:
            _, found = self.faiss.search(vector[None, :], depth)
            rows = found[0][found[0] >= 0]
        else:
            rows = allowed  # a filtered search is over few passages: score them all exactly
        scores = self.vectors(rows) @ vector
        best = np.lexsort((rows, -scores))[:depth]
        return [int(rows[i]) for i in best], {int(rows[i]): float(scores[i]) for i in best}

    def _exact_search(
        self, vector: np.ndarray, depth: int, allowed: np.ndarray | None
    ) -> tuple[list[int], dict[int, float]]:
        """The exact top `depth` by `row_dots`, ties to the lowest row: the same rows and bits on any subset.

        FAISS proposes a few more rows than asked (its float32 scores can differ in
        the last bit with a row's position, and among tied rows it does not keep the
        lowest), which are scored again with `row_dots` and cut. Should rows tied or
        within FAISS's rounding of the cut have been left out, every row is scored.
        So a shard's top rows merged with the other shards' are the whole index's
        (`index.search.sharded`).
        """
        available = len(self) if allowed is None else len(allowed)
        asked = min(available, depth + _EXACT_PAD)
        params = None if allowed is None else faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
        faiss_scores, found = self.faiss.search(vector[None, :], asked, params=params)
        rows = found[0][found[0] >= 0]
        scores = row_dots(self._matrix[rows], vector)
        best = np.lexsort((rows, -scores))[:depth]
        if len(rows) < available and faiss_scores[0][len(rows) - 1] >= scores[best[-1]] - _FAISS_ROUNDING:
            rows = np.arange(len(self)) if allowed is None else np.sort(np.asarray(allowed, dtype=np.int64))
            scores = np.concatenate(
                [row_dots(self._matrix[rows[i : i + 8192]], vector) for i in range(0, len(rows), 8192)]
            )
            best = np.lexsort((rows, -scores))[:depth]
        return [int(rows[i]) for i in best], {int(rows[i]): float(scores[i]) for i in best}


def row_dots(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Each row's inner product with `vector`, rounded to float32, whatever other rows come with it.

    BLAS computes a row's dot product by a different path depending on its
    position in the matrix (blocks and their remainders), so the same passage
    scored among other candidates could differ in its last bit. Summed in
    float64 and rounded, it is the same for a passage wherever it is scored:
    on a shard or in one process (`index.search.sharded`), ties then break the same way.
    """
    return (np.asarray(matrix, dtype=np.float64) @ np.asarray(vector, dtype=np.float64)).astype(np.float32)
