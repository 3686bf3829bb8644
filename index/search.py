"""Answering a question from a stored index.

Search runs the question through two retrievers over the same passages,
dense (cosine similarity of all-MiniLM-L6-v2 vectors, `index.dense`: exact,
or for very large collections approximate with its candidates re-scored
exactly) and keyword (BM25), and fuses them. The fusion was chosen by
measurement on SciFact's train queries (bench/fusion.py, figures in
bench/RESULTS.md): a convex combination of min-max normalised scores with
weight 0.7 on dense beat reciprocal rank fusion at every k tried (train
nDCG@10 0.731 against at most 0.718) and held on the test queries (0.725
against 0.713). Both scores are computed exactly for every candidate either
retriever proposes, so no candidate gets a made-up score. RRF stays
available (`Fusion.RRF`, Cormack et al.'s k=60) because it needs no score
scale at all.

Each hit gets its answering sentence: the sentence of the passage closest to
the question in the model's space, nudged towards sentences sharing the
question's keywords (and stating a quantity when the question asks for one).
The sentence vectors are computed at ingest (embedding every candidate
sentence of five hits at query time took most of a query's time); an index
built before that embeds them at query time, with the same result.
Whether the collection answers at all is decided from the best cosine
similarity, which (unlike fused or BM25 scores) means the same thing whatever
the collection's size (bench/no_answer.py checks it on two collections).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from index.embedding import Embedder
from index.errors import ModelMismatch, rebuild_fix
from index.keyword import tokenize
from index.records import Answer, Choice, Hit, Location, Passage, Span, Verdict
from index.sentences import answer_candidates
from index.store import StoredIndex


class RetrievalMode(Choice):
    """Which retrievers rank the passages: the dense one, the keyword one, or both fused."""

    DENSE = "dense"
    KEYWORD = "keyword"
    HYBRID = "hybrid"

    @classmethod
    def what(cls) -> str:
        return "mode"

    @property
    def label(self) -> str:
        """The name of a hit's rank in this mode's ranking: "dense", "keyword" or "fused"."""
        return "fused" if self is RetrievalMode.HYBRID else self.value


class Fusion(Choice):
    """How the dense and keyword rankings are combined in hybrid mode."""

    RRF = "rrf"
    CONVEX = "convex"

    @property
    def label(self) -> str:
        if self is Fusion.RRF:
            return "reciprocal rank fusion"
        return "convex combination of min-max normalised scores"


@dataclass(frozen=True)
class SearchSettings:
    """Query-time knobs.

    Attributes:
        candidates: How deep each retriever's list goes before fusion.
        fusion: `Fusion.RRF` (reciprocal rank fusion) or `Fusion.CONVEX` (weighted
            sum of min-max normalised scores); its value as text is accepted too.
        rrf_k: Reciprocal rank fusion constant.
        dense_weight: Weight of the dense score in convex fusion.
        answer_threshold: Best question-passage cosine similarity at or above
            which the collection is taken to answer the question.
        keyword_weight: Weight of keyword overlap when picking the answer sentence.
    """

    candidates: int = 100
    fusion: Fusion = Fusion.CONVEX
    rrf_k: int = 60
    dense_weight: float = 0.7
    answer_threshold: float = 0.40
    keyword_weight: float = 0.25

    def __post_init__(self) -> None:
        object.__setattr__(self, "fusion", Fusion.from_str(self.fusion))
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ValueError(f"dense_weight must be in [0, 1], got {self.dense_weight}")
        if self.candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {self.candidates}")
        if self.rrf_k < 0:
            raise ValueError(f"rrf_k must be non-negative, got {self.rrf_k}")


@dataclass(frozen=True)
class Ranking:
    """A full ranking of passage rows for one query, before answer sentences."""

    rows: list[int]
    scores: dict[int, float]
    dense_rank: dict[int, int]
    keyword_rank: dict[int, int]
    similarity: dict[int, float]


@dataclass(frozen=True)
class Neighbour:
    """A passage next to a hit in the same document, for showing context."""

    location: Location
    text: str
    is_hit: bool


# Questions that ask for an amount, a duration or a frequency are answered by
# sentences that state one; a small bonus steers the highlight to them.
_QUANTITY_QUESTION = re.compile(
    r"\b(how (long|often|many|much|far|old|soon)|what (percent|percentage|share|proportion)|when)\b", re.I
)
_QUANTITY = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|dozen|hundred|thousand|million|billion|percent|"
    r"daily|weekly|hourly|seconds?|minutes?|hours?|days?|weeks?|months?|years?|times)\b",
    re.I,
)
# The model reads at most 256 word pieces, about 1,000 characters of English;
# twice that loses nothing it would read and keeps BM25 on a pasted book fast.
MAX_QUERY_CHARS = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_query(query: str) -> str:
    """The text a question is searched with.

    Control characters become spaces, runs of whitespace one space, and a
    question longer than `MAX_QUERY_CHARS` is cut there (at the last space
    before it, when there is one).
    """
    return _clean(query)[0]


def query_is_cut(query: str) -> bool:
    """Whether `clean_query` cuts `query` short (not just its spacing), so callers can say so."""
    return _clean(query)[1]


def _clean(query: str) -> tuple[str, bool]:
    query = " ".join(_CONTROL.sub(" ", query).split())
    if len(query) <= MAX_QUERY_CHARS:
        return query, False
    cut = query[: MAX_QUERY_CHARS + 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut[:MAX_QUERY_CHARS]), True


def convex(dense: dict[int, float], keyword: dict[int, float], dense_weight: float) -> dict[int, float]:
    """Weighted sum of min-max normalised scores over the same candidates.

    Args:
        dense: Cosine similarity per candidate.
        keyword: BM25 score per candidate (0 when it shares no term).
        dense_weight: Weight of the dense score; the keyword score gets the rest.

    Returns:
        Fused score in [0, 1] per candidate.
    """
    return {
        row: dense_weight * d + (1 - dense_weight) * k
        for row, d, k in zip(dense, _min_max(list(dense.values())), _min_max([keyword[r] for r in dense]))
    }


def _min_max(values: list[float]) -> list[float]:
    low, high = min(values, default=0.0), max(values, default=0.0)
    if high <= low:
        return [0.0 for _ in values]
    return [(v - low) / (high - low) for v in values]


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
            raise ModelMismatch(
                f"index {stored.path.parent} was built with model {stored.manifest.model!r}, "
                f"but the embedder is {embedder.name!r}",
                rebuild_fix(stored.path.parent),
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
            query: The question, free text; cleaned by `clean_query` (the
                answer's `query` is the text actually searched).
            k: How many hits to return.
            sources: When given, only passages found in these source files count.

        Returns:
            The ranked hits with answer sentences, and whether they answer the
            question; no hits and not answered when nothing of the question is left.
        """
        query = clean_query(query)
        if not query or k < 1:
            return Answer(query, Verdict.NOT_ANSWERED, ())
        vector = self.embedder.encode([query])[0]
        ranking = self.rank(query, vector, allowed=self._allowed_rows(sources))
        hits = tuple(
            Hit(
                passage=self.passages[row],
                rank=rank,
                score=ranking.scores[row],
                similarity=ranking.similarity[row],
                answer=self.answer_sentence(query, vector, self.passages[row], row),
                dense_rank=ranking.dense_rank.get(row),
                keyword_rank=ranking.keyword_rank.get(row),
            )
            for rank, row in enumerate(ranking.rows[:k], start=1)
        )
        answered = bool(hits) and max(h.similarity for h in hits) >= self.settings.answer_threshold
        return Answer(query, Verdict.ANSWERED if answered else Verdict.NOT_ANSWERED, hits)

    def rank(
        self,
        query: str,
        vector: np.ndarray,
        mode: RetrievalMode | str = RetrievalMode.HYBRID,
        allowed: np.ndarray | None = None,
    ) -> Ranking:
        """Rank passages for a query with one retriever or both fused.

        Args:
            query: The question text (for BM25).
            vector: Its embedding (for dense search).
            mode: A `RetrievalMode` (or its value: "dense", "keyword", "hybrid").
            allowed: Passage rows to restrict to, or None for all.

        Returns:
            Passage rows best first (up to `candidates` from each retriever), with
            fused scores, each retriever's ranks, and exact cosine similarities.
        """
        mode = RetrievalMode.from_str(mode)
        dense, similarity = self._dense(vector, allowed) if mode is not RetrievalMode.KEYWORD else ([], {})
        keyword, bm25 = self._keyword(query, allowed) if mode is not RetrievalMode.DENSE else ([], np.zeros(0))
        if mode is RetrievalMode.DENSE:
            scores = dict(similarity)
        elif mode is RetrievalMode.KEYWORD:
            scores = {row: float(bm25[row]) for row in keyword}
        elif self.settings.fusion is Fusion.RRF:
            scores = rrf([dense, keyword], self.settings.rrf_k)
        else:
            candidates = list(dict.fromkeys(dense + keyword))
            self._fill_similarity(similarity, candidates, vector)
            scores = convex(
                {row: similarity[row] for row in candidates},
                {row: float(bm25[row]) for row in candidates},
                self.settings.dense_weight,
            )
        rows = sorted(scores, key=lambda row: (-scores[row], row))
        self._fill_similarity(similarity, rows[:50], vector)
        return Ranking(
            rows,
            scores,
            {row: r for r, row in enumerate(dense, start=1)},
            {row: r for r, row in enumerate(keyword, start=1)},
            similarity,
        )

    def _fill_similarity(self, similarity: dict[int, float], rows: list[int], vector: np.ndarray) -> None:
        missing = [row for row in rows if row not in similarity]
        if missing:
            similarity.update(zip(missing, self._similarities(missing, vector).tolist()))

    def _similarities(self, rows: list[int] | np.ndarray, vector: np.ndarray) -> np.ndarray:
        """Exact cosine similarity of the question with these passage rows."""
        return self.stored.dense.vectors(rows) @ vector

    def _allowed_rows(self, sources: frozenset[str] | None) -> np.ndarray | None:
        if sources is None:
            return None
        return np.array(
            [row for row, p in enumerate(self.passages) if any(loc.source in sources for loc in p.locations)],
            dtype=np.int64,
        )

    def _dense(self, vector: np.ndarray, allowed: np.ndarray | None) -> tuple[list[int], dict[int, float]]:
        """Top passages by cosine similarity, with their similarities."""
        return self.stored.dense.search(vector, self.settings.candidates, allowed)

    def _keyword(self, query: str, allowed: np.ndarray | None) -> tuple[list[int], np.ndarray]:
        """Top passages by BM25 (only those sharing a term with the query), and all BM25 scores."""
        scores = self.stored.keyword.scores(query)
        if allowed is not None:
            mask = np.zeros(len(scores), dtype=bool)
            mask[allowed] = True
            scores = np.where(mask, scores, 0.0)
        depth = min(self.settings.candidates, int(np.count_nonzero(scores > 0)))
        if depth == 0:
            return [], scores
        rows = np.argpartition(-scores, depth - 1)[:depth]
        return [int(r) for r in rows[np.lexsort((rows, -scores[rows]))]], scores

    def answer_sentence(self, query: str, vector: np.ndarray, passage: Passage, row: int | None = None) -> Span:
        """The sentence of `passage` that best answers `query`, as a span of its document.

        Args:
            query: The question.
            vector: The question's embedding.
            passage: The passage to look in.
            row: Its row in the index, to use the sentence vectors stored
                there; when None (or the index has none) they are embedded now.

        Returns:
            The span, offset into the document of the passage's first location.
        """
        spans, scores = self.sentence_scores(query, vector, passage, row)
        start, end = spans[int(np.argmax(scores))]
        offset = passage.location.start
        return Span(offset + start, offset + end, passage.text[start:end])

    def sentence_scores(
        self, query: str, vector: np.ndarray, passage: Passage, row: int | None = None
    ) -> tuple[list[tuple[int, int]], np.ndarray]:
        """Each answer candidate of `passage` (spans in its text) and how well it answers `query`."""
        spans = answer_candidates(passage.text)
        if len(spans) == 1:
            return spans, np.zeros(1, dtype=np.float32)
        sentences = [passage.text[s:e] for s, e in spans]
        scores = self._sentence_vectors(sentences, row) @ vector
        query_terms = set(tokenize(query))
        if query_terms:
            overlap = np.array([len(query_terms & set(tokenize(s))) / len(query_terms) for s in sentences])
            scores = scores + self.settings.keyword_weight * overlap
        if _QUANTITY_QUESTION.search(query):
            scores = scores + self.settings.keyword_weight * np.array([bool(_QUANTITY.search(s)) for s in sentences])
        return spans, scores

    def _sentence_vectors(self, sentences: list[str], row: int | None) -> np.ndarray:
        stored = self.stored.sentences
        if row is None or stored is None:
            return self.embedder.encode(sentences)
        return np.asarray(stored.of(row), dtype=np.float32)

    def context(self, location: Location, before: int = 1, after: int = 1) -> list[Neighbour]:
        """The passages around `location` in its document, in document order."""
        rows = self._by_document[location.source, location.doc_id]
        at = next(i for i, (loc, _) in enumerate(rows) if loc.start == location.start)
        return [
            Neighbour(loc, self.passages[row].text, i == at)
            for i, (loc, row) in enumerate(rows[max(0, at - before) : at + after + 1], start=max(0, at - before))
        ]

    @cached_property
    def _by_document(self) -> dict[tuple[str, str], list[tuple[Location, int]]]:
        """Each document's passages in document order, keyed by (source, doc_id).

        Both, because a record's id may equal another file's path or a record id in another file.
        """
        by_doc: dict[tuple[str, str], list[tuple[Location, int]]] = defaultdict(list)
        for row, passage in enumerate(self.passages):
            for loc in passage.locations:
                by_doc[loc.source, loc.doc_id].append((loc, row))
        for rows in by_doc.values():
            rows.sort(key=lambda item: item[0].start)
        return dict(by_doc)
