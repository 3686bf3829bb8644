"""Fusing the dense and keyword rankings into one.

Fusion is a convex combination of min-max normalised scores. Its dense
weight grows with the dense retriever's best score (`SearchSettings.dense_weight`
at a best score of 0.5, moving by `dense_weight_slope` per unit, within bounds):
cosine similarity means the same thing on any collection (it is a property of
the model), so a strong dense match earns the dense side more trust and a weak
one hands more to BM25. Reciprocal rank fusion (`Fusion.RRF`, Cormack et al.'s
k=60) stays available because it needs no score scale at all; bench/RESULTS.md
records how it ranked.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from index.records import ScoreParts
from index.search.settings import Fusion, RetrievalMode, SearchSettings

# The dense weight of adaptive convex fusion stays inside these bounds, so
# neither retriever is ever ignored.
_WEIGHT_BOUNDS = (0.3, 0.95)


@dataclass(frozen=True)
class Ranking:
    """A ranking of passage rows for one query, with the parts of every score.

    Attributes:
        rows: Passage rows, best first.
        scores: The score each row is ranked by.
        dense_rank / keyword_rank: Each retriever's own 1-based ranks.
        parts: What each row's score was made of.
        unknown: How rare the rarest word is that the question has and the collection never mentions
            (`index.search.salience`; 0: none).
    """

    rows: list[int]
    scores: dict[int, float]
    dense_rank: dict[int, int]
    keyword_rank: dict[int, int]
    parts: dict[int, ScoreParts]
    unknown: float = 0.0


def min_max(values: np.ndarray) -> np.ndarray:
    """`values` scaled to [0, 1] (all zeros when they are all equal)."""
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 0.0)
    if high <= low:
        return np.zeros(len(values), dtype=np.float64)
    return (values - low) / (high - low)


def convex(dense: np.ndarray, keyword: np.ndarray, dense_weight: float) -> np.ndarray:
    """Weighted sum of min-max normalised scores over the same candidates.

    Args:
        dense: Dense score per candidate.
        keyword: BM25 score per candidate (0 when it shares no term).
        dense_weight: Weight of the dense score; the keyword score gets the rest.

    Returns:
        Fused score in [0, 1] per candidate.
    """
    return dense_weight * min_max(dense) + (1 - dense_weight) * min_max(keyword)


def dense_weight(settings: SearchSettings, best_dense: float) -> float:
    """The dense weight of convex fusion for a question whose best dense score is `best_dense`."""
    weight = settings.dense_weight + settings.dense_weight_slope * (best_dense - 0.5)
    return float(np.clip(weight, *_WEIGHT_BOUNDS)) if settings.dense_weight_slope else settings.dense_weight


def rrf(rankings: list[list[int]], k: int) -> dict[int, float]:
    """Reciprocal rank fusion: sum over lists of 1 / (k + rank), ranks starting at 1.

    Args:
        rankings: Each list holds item ids, best first.
        k: The damping constant.

    Returns:
        Fused score per item id.
    """
    fused: dict[int, float] = defaultdict(float)
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] += 1.0 / (k + rank)
    return dict(fused)


@dataclass(frozen=True)
class Candidates:
    """What each retriever proposes for one question, with both scores of every candidate: all fusion needs.

    `Searcher.rank` gathers them from one index; a router gathers them from
    shards (`index.search.sharded`). Both hand them to `fuse`, so they rank alike.

    Attributes:
        dense: Rows the dense retriever proposes (its top `candidates` by passage cosine), in any order.
        keyword: Rows BM25 proposes, best first (its top `candidates` sharing a term with the question).
        rows: Every candidate: the rows of both lists, each once, in any order.
        cosines: Each candidate's passage cosine, in the order of `rows`.
        best_sentences: Each candidate's best answer-candidate cosine.
        bm25: Each candidate's BM25 score (0 when it shares no term).
        unknown: The question's rarest word the collection never mentions (`index.search.salience`).
    """

    dense: list[int]
    keyword: list[int]
    rows: np.ndarray
    cosines: np.ndarray
    best_sentences: np.ndarray
    bm25: np.ndarray
    unknown: float = 0.0


def fuse(candidates: Candidates, settings: SearchSettings, mode: RetrievalMode = RetrievalMode.HYBRID) -> Ranking:
    """Rank the candidates with one retriever or both fused (see `Searcher.rank`)."""
    proposed, keyword, cosines, best_sentences = (
        candidates.dense,
        candidates.keyword,
        candidates.cosines,
        candidates.best_sentences,
    )
    rows = candidates.rows.tolist()
    dense_scores = (1 - settings.sentence_weight) * cosines + settings.sentence_weight * best_sentences
    dense_of = dict(zip(rows, dense_scores.tolist()))
    dense = sorted(proposed, key=lambda row: (-dense_of[row], row))
    keyword_of = dict(zip(rows, np.asarray(candidates.bm25).tolist()))
    if mode is RetrievalMode.DENSE:
        weight, scores = 1.0, {row: dense_of[row] for row in dense}
    elif mode is RetrievalMode.KEYWORD:
        weight, scores = 0.0, {row: keyword_of[row] for row in keyword}
    elif settings.fusion is Fusion.RRF:
        weight, scores = 0.5, rrf([dense, keyword], settings.rrf_k)
    else:
        weight = dense_weight(settings, dense_of[dense[0]] if dense else 0.0)
        fused = convex(dense_scores, np.array([keyword_of[row] for row in rows]), weight)
        scores = dict(zip(rows, fused.tolist()))
    ranked = sorted(scores, key=lambda row: (-scores[row], row))
    parts = {
        row: ScoreParts(cos, best, dense_of[row], keyword_of[row], weight, scores[row])
        for row, cos, best in zip(rows, np.asarray(cosines, float).tolist(), np.asarray(best_sentences, float).tolist())
        if row in scores
    }
    return Ranking(
        ranked,
        scores,
        {row: r for r, row in enumerate(dense, start=1)},
        {row: r for r, row in enumerate(keyword, start=1)},
        parts,
        candidates.unknown,
    )
