"""Answering a question from a stored index.

Search runs the question through two retrievers over the same passages,
dense (cosine similarity of all-MiniLM-L6-v2 vectors, exact inner product in
FAISS) and keyword (BM25), and fuses their rankings with reciprocal rank
fusion. RRF needs no score calibration between the two retrievers, which is
why it is the default; its constant k=60 is the value from Cormack et al.
(2009) that damps the influence of any single list's top ranks.

Each hit gets its answering sentence: the sentence of the passage closest to
the question in the model's space, with a nudge for sharing the question's
keywords. Whether the collection answers at all is decided from the best
cosine similarity, which (unlike fused or BM25 scores) means the same thing
whatever the collection's size.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

import faiss
import numpy as np

from index.embedding import Embedder
from index.keyword import tokenize
from index.records import Answer, Hit, Location, Passage, Span
from index.sentences import split_sentences
from index.store import StoredIndex


@dataclass(frozen=True)
class SearchSettings:
    """Query-time knobs.

    Attributes:
        candidates: How deep each retriever's list goes before fusion.
        rrf_k: Reciprocal rank fusion constant.
        answer_threshold: Best question-passage cosine similarity at or above
            which the collection is taken to answer the question.
        keyword_weight: Weight of keyword overlap when picking the answer sentence.
    """

    candidates: int = 100
    rrf_k: int = 60
    answer_threshold: float = 0.40
    keyword_weight: float = 0.15

    def __post_init__(self) -> None:
        if self.candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {self.candidates}")
        if self.rrf_k < 0:
            raise ValueError(f"rrf_k must be non-negative, got {self.rrf_k}")


@dataclass(frozen=True)
class Neighbour:
    """A passage next to a hit in the same document, for showing context."""

    location: Location
    text: str
    is_hit: bool


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


class Searcher:
    """Questions in, cited passages out, over one loaded index."""

    def __init__(self, stored: StoredIndex, embedder: Embedder, settings: SearchSettings = SearchSettings()) -> None:
        if embedder.name != stored.manifest.model:
            raise ValueError(
                f"index was built with {stored.manifest.model!r} but the embedder is {embedder.name!r}"
            )
        self.stored = stored
        self.embedder = embedder
        self.settings = settings

    @property
    def passages(self) -> list[Passage]:
        return self.stored.passages

    def search(self, query: str, k: int = 5, sources: frozenset[str] | None = None) -> Answer:
        """Answer one question.

        Args:
            query: The question, free text.
            k: How many hits to return.
            sources: When given, only passages found in these source files count.

        Returns:
            The ranked hits with answer sentences, and whether they answer the question.
        """
        query = " ".join(query.split())
        if not query or k < 1:
            return Answer(query, False, ())
        vector = self.embedder.encode([query])[0]
        allowed = self._allowed_rows(sources)
        dense, similarity = self._dense(vector, allowed)
        keyword = self._keyword(query, allowed)
        fused = rrf([dense, keyword], self.settings.rrf_k)
        order = sorted(fused, key=lambda row: (-fused[row], row))[:k]
        dense_rank = {row: r for r, row in enumerate(dense, start=1)}
        keyword_rank = {row: r for r, row in enumerate(keyword, start=1)}
        for row in order:
            if row not in similarity:
                similarity[row] = float(self.stored.vectors.reconstruct(row) @ vector)
        hits = tuple(
            Hit(
                passage=self.passages[row],
                rank=rank,
                score=fused[row],
                similarity=similarity[row],
                answer=self.answer_sentence(query, vector, self.passages[row]),
                dense_rank=dense_rank.get(row),
                keyword_rank=keyword_rank.get(row),
            )
            for rank, row in enumerate(order, start=1)
        )
        answered = bool(hits) and max(h.similarity for h in hits) >= self.settings.answer_threshold
        return Answer(query, answered, hits)

    def _allowed_rows(self, sources: frozenset[str] | None) -> np.ndarray | None:
        if sources is None:
            return None
        return np.array(
            [row for row, p in enumerate(self.passages) if any(loc.source in sources for loc in p.locations)],
            dtype=np.int64,
        )

    def _dense(self, vector: np.ndarray, allowed: np.ndarray | None) -> tuple[list[int], dict[int, float]]:
        """Top passages by cosine similarity (FAISS), with their similarities."""
        depth = min(self.settings.candidates, self.stored.vectors.ntotal if allowed is None else len(allowed))
        if depth == 0:
            return [], {}
        params = None if allowed is None else faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
        scores, rows = self.stored.vectors.search(vector[None, :], depth, params=params)
        pairs = [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]
        return [r for r, _ in pairs], dict(pairs)

    def _keyword(self, query: str, allowed: np.ndarray | None) -> list[int]:
        """Top passages by BM25, best first, only those sharing a term with the query."""
        scores = self.stored.keyword.scores(query)
        if allowed is not None:
            mask = np.zeros(len(scores), dtype=bool)
            mask[allowed] = True
            scores = np.where(mask, scores, 0.0)
        depth = min(self.settings.candidates, int(np.count_nonzero(scores > 0)))
        if depth == 0:
            return []
        rows = np.argpartition(-scores, depth - 1)[:depth]
        return [int(r) for r in rows[np.lexsort((rows, -scores[rows]))]]

    def answer_sentence(self, query: str, vector: np.ndarray, passage: Passage) -> Span:
        """The sentence of `passage` that best answers `query`, as a span of its document.

        Args:
            query: The question.
            vector: The question's embedding.
            passage: The passage to look in.

        Returns:
            The span, offset into the document of the passage's first location.
        """
        spans = split_sentences(passage.text) or [(0, len(passage.text))]
        if len(spans) > 1:
            sentences = [passage.text[s:e] for s, e in spans]
            scores = self.embedder.encode(sentences) @ vector
            query_terms = set(tokenize(query))
            if query_terms:
                overlap = np.array([len(query_terms & set(tokenize(s))) / len(query_terms) for s in sentences])
                scores = scores + self.settings.keyword_weight * overlap
            spans = [spans[int(np.argmax(scores))]]
        start, end = spans[0]
        offset = passage.location.start
        return Span(offset + start, offset + end, passage.text[start:end])

    def context(self, location: Location, before: int = 1, after: int = 1) -> list[Neighbour]:
        """The passages around `location` in its document, in document order."""
        rows = self._by_document[location.doc_id]
        at = next(i for i, (loc, _) in enumerate(rows) if loc.start == location.start)
        return [
            Neighbour(loc, self.passages[row].text, i == at)
            for i, (loc, row) in enumerate(rows[max(0, at - before) : at + after + 1], start=max(0, at - before))
        ]

    @cached_property
    def _by_document(self) -> dict[str, list[tuple[Location, int]]]:
        by_doc: dict[str, list[tuple[Location, int]]] = defaultdict(list)
        for row, passage in enumerate(self.passages):
            for loc in passage.locations:
                by_doc[loc.doc_id].append((loc, row))
        for rows in by_doc.values():
            rows.sort(key=lambda item: item[0].start)
        return dict(by_doc)
