"""Serving shards searched: each shard searched alone, the shards' candidates merged exactly.

The shard files are `index.store.shards`.

Why the merged answer is the single-process answer, bit for bit:

- each shard proposes its own top `candidates` rows by passage cosine
  (FAISS) and by BM25, and reports both scores of every row it proposes;
  the whole collection's top `candidates` of each retriever are among the
  shards' (ties go to the lowest row everywhere: `keyword.top_rows`, `DenseIndex.search`);
- BM25 weights are the whole collection's (`KeywordIndex.subset`: document
  frequencies and average length over all passages), so shard scores compare;
- a passage's cosines are computed the same way wherever it is scored
  (`dense.row_dots`, which exact dense search ranks by too);
- the router then fuses the merged lists with the very function a single
  process uses (`search.fuse`), fetches the top hits' passages and
  answer-candidate cosines from their shards, and builds the answer with
  `search.build_answer`.

`ShardedSearcher` does this in one process (for tests and benchmarks);
`index.serve.ray_serve` does it over Ray Serve, with one deployment per shard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.embed.registry import Embedder
from index.errors import ModelMismatch, rebuild_fix
from index.records import Answer, Passage, Verdict
from index.search.answer import build_answer, candidate_cosines, sentence_cosines
from index.search.confidence import ConfidenceModel
from index.search.fusion import Candidates, Ranking, fuse
from index.search.query import clean_query
from index.search.salience import unknown_rarity
from index.search.settings import SearchSettings
from index.store.pointer import live_version
from index.store.shards import ShardIndex


@dataclass(frozen=True)
class ShardCandidates:
    """What one shard proposes for a question, in the whole index's rows (plain arrays: they travel).

    Attributes:
        shard: Which shard.
        dense_rows / dense_scores: Its top rows by passage cosine, with FAISS's scores.
        keyword_rows / keyword_scores: Its top rows by BM25 (sharing a term with the question), best first.
        rows: Every row it proposes, with each one's `cosines`, `best_sentences` and `bm25`.
        unknown: The question's rarest word the collection never mentions (every shard keeps the whole vocabulary).
    """

    shard: int
    dense_rows: np.ndarray
    dense_scores: np.ndarray
    keyword_rows: np.ndarray
    keyword_scores: np.ndarray
    rows: np.ndarray
    cosines: np.ndarray
    best_sentences: np.ndarray
    bm25: np.ndarray
    unknown: float = 0.0


def shard_candidates(
    shard: ShardIndex, query: str, vector: np.ndarray, depth: int, sources: frozenset[str] | None
) -> ShardCandidates:
    """This shard's candidates for a cleaned question and its vector.

    Args:
        query: The cleaned question (for BM25).
        vector: Its vector.
        depth: How many each retriever proposes (`SearchSettings.candidates`).
        sources: When given, only passages found in these source files count.
    """
    allowed = shard.allowed_rows(sources)
    dense_local, faiss_scores = shard.dense.search(vector, depth, allowed)
    keyword_local, bm25 = shard.keyword.search(query, depth, allowed)
    local = np.array(list(dict.fromkeys(dense_local + keyword_local.tolist())), dtype=np.int64)
    cosines, best = candidate_cosines(shard.dense.vectors(local), shard.sentences, local, vector)
    return ShardCandidates(
        shard=shard.shard,
        dense_rows=shard.rows[np.asarray(dense_local, dtype=np.int64)],
        dense_scores=np.array([faiss_scores[row] for row in dense_local], dtype=np.float32),
        keyword_rows=shard.rows[keyword_local],
        keyword_scores=bm25[keyword_local],
        rows=shard.rows[local],
        cosines=cosines,
        best_sentences=best,
        bm25=bm25[local],
        unknown=unknown_rarity(query, shard.keyword.vocabulary),
    )


def fetch(shard: ShardIndex, rows: Sequence[int], vector: np.ndarray) -> list[tuple[Passage, np.ndarray]]:
    """The passages of these (whole-index) rows, each with its answer candidates' cosines with `vector`."""
    local = shard.local_rows(rows)
    return [(shard.passages[i], sentence_cosines(shard.sentences.of(i), vector)) for i in local]


def merge(parts: Sequence[ShardCandidates], depth: int) -> tuple[Candidates, dict[int, int]]:
    """The whole collection's candidates from every shard's: each retriever's top `depth`, ties to the lowest row.

    Returns:
        The candidates to fuse, and the shard that holds each of their rows.
    """
    dense = _best(np.concatenate([p.dense_rows for p in parts]), np.concatenate([p.dense_scores for p in parts]), depth)
    keyword = _best(
        np.concatenate([p.keyword_rows for p in parts]), np.concatenate([p.keyword_scores for p in parts]), depth
    )
    scored = {
        int(row): (cos, best, bm25, p.shard)
        for p in parts
        for row, cos, best, bm25 in zip(p.rows, p.cosines, p.best_sentences, p.bm25)
    }
    rows = list(dict.fromkeys(dense + keyword))
    picked = [scored[row] for row in rows]
    candidates = Candidates(
        dense,
        keyword,
        np.array(rows, dtype=np.int64),
        np.array([s[0] for s in picked], dtype=np.float64),
        np.array([s[1] for s in picked], dtype=np.float64),
        np.array([s[2] for s in picked], dtype=parts[0].bm25.dtype if parts else np.float32),
        max((p.unknown for p in parts), default=0.0),
    )
    return candidates, {row: s[3] for row, s in zip(rows, picked)}


def _best(rows: np.ndarray, scores: np.ndarray, depth: int) -> list[int]:
    order = np.lexsort((rows, -scores))[:depth]
    return [int(rows[i]) for i in order]


def rank_shards(parts: Sequence[ShardCandidates], settings: SearchSettings) -> tuple[Ranking, dict[int, int]]:
    """Merge the shards' candidates and fuse them as one process would; with each row's shard."""
    candidates, owner = merge(parts, settings.candidates)
    return fuse(candidates, settings), owner


def top_by_shard(ranking: Ranking, owner: Mapping[int, int], k: int) -> dict[int, list[int]]:
    """The top `k` rows of a ranking, grouped by the shard that holds them (to fetch their passages)."""
    grouped: dict[int, list[int]] = {}
    for row in ranking.rows[:k]:
        grouped.setdefault(owner[row], []).append(row)
    return grouped


class ShardedSearcher:
    """The shards of one version searched in this process: what a router does over servers, without them."""

    def __init__(
        self,
        shards: Sequence[ShardIndex],
        embedder: Embedder,
        settings: SearchSettings = SearchSettings(),
        confidence: ConfidenceModel | None = None,
    ) -> None:
        if shards and embedder.name != shards[0].model:
            raise ModelMismatch(
                f"index {shards[0].version.parent} was built with model {shards[0].model!r}, "
                f"but the embedder is {embedder.name!r}",
                rebuild_fix(shards[0].version.parent),
            )
        self.shards = list(shards)
        self.embedder = embedder
        self.settings = settings
        self.confidence = confidence or ConfidenceModel.bundled()

    @classmethod
    def load(cls, index_dir: Path, shards: int, embedder: Embedder, **kwargs) -> ShardedSearcher:
        """Every shard of the live version of `index_dir`."""
        version = live_version(index_dir)
        return cls([ShardIndex.load(version, s, shards) for s in range(shards)], embedder, **kwargs)

    def search(self, query: str, k: int = 5, sources: frozenset[str] | None = None) -> Answer:
        """As `Searcher.search`, over the shards."""
        query = clean_query(query)
        if not query or k < 1:
            return Answer(query, Verdict.NOT_ANSWERED, ())
        vector = self.embedder.encode([query])[0]
        parts = [shard_candidates(shard, query, vector, self.settings.candidates, sources) for shard in self.shards]
        ranking, owner = rank_shards(parts, self.settings)
        passages, cosines = {}, {}
        for shard, rows in top_by_shard(ranking, owner, max(k, self.settings.rerank_depth)).items():
            for row, (passage, sentence) in zip(rows, fetch(self.shards[shard], rows, vector)):
                passages[row], cosines[row] = passage, sentence
        return build_answer(query, ranking, k, passages, cosines, self.settings, self.confidence, sources)
