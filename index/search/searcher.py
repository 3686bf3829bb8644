"""Answering a question from a stored index.

Search runs the question through two retrievers over the same passages and
fuses them:

- dense: each passage is scored by its own cosine similarity with the
  question and by its best answer candidate's (a sentence vector pooled from
  the passage's own forward pass, `index.embed.pooling`), half and half. A passage
  whose one sentence answers while the rest is about something else is
  found that way; candidates come from the passage vectors (`index.retrievers.dense`:
  exact, or for very large collections approximate and re-scored exactly);
- keyword: BM25 (`index.retrievers.keyword`).

Fusion is a convex combination of min-max normalised scores. Its dense
weight is 0.7 when the dense retriever's best score is 0.5, and moves by
0.3 per unit of that score: cosine similarity means the same thing on any
collection (it is a property of the model), so a strong dense match earns
the dense side more trust and a weak one hands more to BM25. Every setting
here was chosen on four development sets at once (SciFact train, MedQuAD,
the two question sets in corpus/) by `bench/tune.py`, whose grid is in
bench/RESULTS.md: a setting that helped one set and hurt another by more than
0.005 did not become the default. Reciprocal rank fusion (`Fusion.RRF`,
Cormack et al.'s k=60) stays available because it needs no score scale at
all, but it ranked lower on every one of the four sets.

Each hit gets its answering sentence: the candidate closest to the question
(context-pooled vectors picked the labelled sentence more often than
sentences embedded alone), nudged towards one stating a quantity when the
question asks for one and away from sentences that are questions
themselves; a neighbouring candidate scoring within `window` of it is
highlighted with it, since the two then answer together. Each hit also gets
a confidence, the probability that it answers (`index.search.confidence`,
calibrated on the same development sets). The question is refused when no
passage the ranking scored reaches cosine 0.40, however many hits are shown (a property of the model, checked on
several collections); otherwise it is answered when the best hit's
confidence reaches 0.25, and shown as "closest passages; these may not
answer" when it does not.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from index.embed.registry import Embedder
from index.errors import ModelMismatch, rebuild_fix
from index.records import Answer, Choice, Hit, Location, Passage, ScoreParts, Span, Verdict
from index.retrievers.dense import row_dots
from index.search.confidence import ConfidenceModel
from index.search.sentences import answer_candidates
from index.store.reader import SentenceVectors, StoredIndex


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
    """Query-time knobs (the defaults are chosen by bench/tune.py on four development sets).

    Attributes:
        candidates: How deep each retriever's list goes before fusion.
        fusion: `Fusion.CONVEX` (weighted sum of min-max normalised scores) or
            `Fusion.RRF` (reciprocal rank fusion); its value as text is accepted too.
        rrf_k: Reciprocal rank fusion constant.
        dense_weight: Weight of the dense score in convex fusion when the dense
            retriever's best score is 0.5.
        dense_weight_slope: How much the dense weight grows per unit of the
            dense retriever's best score above 0.5 (0: a fixed weight).
        sentence_weight: Share of the best answer candidate's cosine in a
            passage's dense score; the passage's own cosine gets the rest.
        answer_threshold: A question is refused when no hit's passage cosine
            reaches this.
        confident: The best hit's confidence at or above which the question
            counts as answered; below it the hits are "closest passages".
        quantity_bonus: Added to an answer candidate that states a quantity
            when the question asks for one ("how long", "how much", ...).
        question_penalty: Taken from an answer candidate that is itself a question.
        window: A candidate next to the best one and scoring within this of
            it is highlighted with it.
    """

    candidates: int = 100
    fusion: Fusion = Fusion.CONVEX
    rrf_k: int = 60
    dense_weight: float = 0.7
    dense_weight_slope: float = 0.3
    sentence_weight: float = 0.5
    answer_threshold: float = 0.40
    confident: float = 0.25
    quantity_bonus: float = 0.1
    question_penalty: float = 0.3
    window: float = 0.05

    def __post_init__(self) -> None:
        object.__setattr__(self, "fusion", Fusion.from_str(self.fusion))
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ValueError(f"dense_weight must be in [0, 1], got {self.dense_weight}")
        if not 0.0 <= self.sentence_weight <= 1.0:
            raise ValueError(f"sentence_weight must be in [0, 1], got {self.sentence_weight}")
        if self.candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {self.candidates}")
        if self.rrf_k < 0:
            raise ValueError(f"rrf_k must be non-negative, got {self.rrf_k}")
        if self.window < 0:
            raise ValueError(f"window must be non-negative, got {self.window}")


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
    """

    rows: list[int]
    scores: dict[int, float]
    dense_rank: dict[int, int]
    keyword_rank: dict[int, int]
    parts: dict[int, ScoreParts]


@dataclass(frozen=True)
class Neighbour:
    """A passage next to a hit in the same document, for showing context."""

    location: Location
    text: str
    is_hit: bool


# Questions that ask for an amount, a duration or a frequency are answered by
# sentences that state one; a small bonus steers the highlight to them.
_QUANTITY_QUESTION = re.compile(
    r"\b(how (long|often|many|much|far|old|soon)|what (percent|percentage|share|proportion|age)|when)\b", re.I
)
_QUANTITY = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|dozen|hundred|thousand|million|billion|percent|"
    r"daily|weekly|hourly|seconds?|minutes?|hours?|days?|weeks?|months?|years?|decades?|times)\b",
    re.I,
)
_ASKS = re.compile(r"\?[\"'”’)\]]*$")
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


def top_rows(scores: np.ndarray, depth: int) -> np.ndarray:
    """The `depth` rows of highest score, best first; of rows tied at the cut, the lowest.

    The lowest rows among ties is also what dense search keeps (`DenseIndex.search`),
    so a shard's top rows merged with the others' are the top rows of the whole collection.
    """
    if depth <= 0:
        return np.zeros(0, dtype=np.int64)
    if depth < len(scores):
        cut = np.partition(scores, len(scores) - depth)[len(scores) - depth]
        above = np.flatnonzero(scores > cut)
        rows = np.concatenate([above, np.flatnonzero(scores == cut)[: depth - len(above)]])
    else:
        rows = np.arange(len(scores))
    return rows[np.lexsort((rows, -scores[rows]))]


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
    """

    dense: list[int]
    keyword: list[int]
    rows: np.ndarray
    cosines: np.ndarray
    best_sentences: np.ndarray
    bm25: np.ndarray


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
        row: ScoreParts(float(cos), float(best), dense_of[row], keyword_of[row], weight, scores[row])
        for row, cos, best in zip(rows, cosines, best_sentences)
        if row in scores
    }
    return Ranking(
        ranked,
        scores,
        {row: r for r, row in enumerate(dense, start=1)},
        {row: r for r, row in enumerate(keyword, start=1)},
        parts,
    )


def sentence_scores(
    query: str, text: str, cosines: np.ndarray, settings: SearchSettings
) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Each answer candidate of a passage (spans in `text`) and how well it answers `query`.

    Args:
        query: The cleaned question.
        text: The passage's text.
        cosines: Each candidate's cosine with the question (its stored vector times the question's).
        settings: The quantity bonus and question penalty.
    """
    spans = answer_candidates(text)
    sentences = [text[s:e] for s, e in spans]
    scores = cosines
    if _QUANTITY_QUESTION.search(query):
        scores = scores + settings.quantity_bonus * np.array([bool(_QUANTITY.search(s)) for s in sentences])
    scores = scores - settings.question_penalty * np.array([bool(_ASKS.search(s)) for s in sentences])
    return spans, scores


def answer_span(query: str, passage: Passage, cosines: np.ndarray, settings: SearchSettings) -> Span:
    """The part of `passage` that best answers `query`, as a span of its document.

    Args:
        query: The cleaned question.
        passage: The hit's passage.
        cosines: Its answer candidates' cosines with the question.
        settings: Scoring of candidates and the `window` within which a neighbour joins the best one.

    Returns:
        The best answer candidate, or it and a neighbour scoring within
        `window` of it; offsets into the document of the passage's first location.
    """
    spans, scores = sentence_scores(query, passage.text, cosines, settings)
    order = np.argsort(-scores, kind="stable")
    first = second = int(order[0])
    if len(order) > 1 and abs(int(order[1]) - first) == 1 and scores[first] - scores[order[1]] <= settings.window:
        second = int(order[1])
    start, end = spans[min(first, second)][0], spans[max(first, second)][1]
    offset = passage.location.start
    return Span(offset + start, offset + end, passage.text[start:end])


def sentence_cosines(sentence_vectors: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """A passage's answer candidates' cosines with the question, from their stored (float16) vectors."""
    return row_dots(sentence_vectors, vector)


def candidate_cosines(
    passage_vectors: np.ndarray, sentences: SentenceVectors, rows: np.ndarray, vector: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The question's cosine with these passages, and with each one's best answer candidate.

    Args:
        passage_vectors: The vectors of `rows`, in their order.
        sentences: The answer-candidate vectors of the index (or shard) that `rows` index.
        rows: Passage rows.
        vector: The question's vector.
    """
    if not len(rows):
        return np.zeros(0), np.zeros(0)
    starts = sentences.starts
    counts = starts[rows + 1] - starts[rows]  # every passage has at least one candidate
    blocks = np.cumsum(counts) - counts  # where each passage's candidates begin in the gathered rows
    gathered = np.repeat(starts[rows] - blocks, counts) + np.arange(counts.sum())
    scores = row_dots(sentences.vectors[gathered], vector)
    return row_dots(passage_vectors, vector).astype(np.float64), np.maximum.reduceat(scores, blocks).astype(np.float64)


def build_answer(
    query: str,
    ranking: Ranking,
    k: int,
    passages: Mapping[int, Passage],
    cosines: Mapping[int, np.ndarray],
    settings: SearchSettings,
    confidence: ConfidenceModel,
    sources: frozenset[str] | None = None,
) -> Answer:
    """The answer to a ranked question: the top `k` hits with answer spans and confidences, and the verdict.

    Args:
        query: The cleaned question.
        ranking: Its ranking (`fuse`).
        k: How many hits.
        passages: The passage of each of the top `k` rows.
        cosines: Each of those rows' answer candidates' cosines with the question (`sentence_cosines`).
        settings: Answer spans and the verdict's thresholds.
        confidence: Turns dense scores in rank order into probabilities that a hit answers.
        sources: The source files the question was limited to: each hit is cited from one of them.
    """
    rows = ranking.rows[:k]
    passages = {row: passages[row].cited_in(sources) for row in rows}
    dense = [ranking.parts[row].dense for row in ranking.rows[: k + 1]]  # the hit below the last counts too
    confidences = confidence.probabilities(dense)[: len(rows)]
    hits = tuple(
        Hit(
            passage=passages[row],
            rank=rank,
            score=ranking.scores[row],
            similarity=ranking.parts[row].passage_cosine,
            answer=answer_span(query, passages[row], cosines[row], settings),
            dense_rank=ranking.dense_rank.get(row),
            keyword_rank=ranking.keyword_rank.get(row),
            confidence=float(confidence),
            parts=ranking.parts[row],
        )
        for rank, (row, confidence) in enumerate(zip(rows, confidences), start=1)
    )
    return Answer(query, verdict(hits, ranking, settings), hits)


def verdict(hits: tuple[Hit, ...], ranking: Ranking, settings: SearchSettings) -> Verdict:
    """Refused when no ranked passage reaches the answer threshold; answered when the best hit is confident.

    The threshold looks at every passage the ranking scored, not only the
    top `k`: how many hits a reader asks for must not change whether the
    question is answered.
    """
    best = max((part.passage_cosine for part in ranking.parts.values()), default=-1.0)
    if not hits or best < settings.answer_threshold:
        return Verdict.NOT_ANSWERED
    return Verdict.ANSWERED if hits[0].confidence >= settings.confident else Verdict.UNSURE


class Searcher:
    """Questions in, cited passages out, over one loaded index."""

    def __init__(
        self,
        stored: StoredIndex,
        embedder: Embedder,
        settings: SearchSettings = SearchSettings(),
        confidence: ConfidenceModel | None = None,
    ) -> None:
        if embedder.name != stored.manifest.model:
            raise ModelMismatch(
                f"index {stored.path.parent} was built with model {stored.manifest.model!r}, "
                f"but the embedder is {embedder.name!r}",
                rebuild_fix(stored.path.parent),
            )
        self.stored = stored
        self.embedder = embedder
        self.settings = settings
        self.confidence = confidence or ConfidenceModel.bundled()

    @property
    def passages(self) -> Sequence[Passage]:
        """The index's passages, read by row (`index.store.passages.PassageFile`)."""
        return self.stored.passages

    def search(self, query: str, k: int = 5, sources: frozenset[str] | None = None) -> Answer:
        """Answer one question.

        Args:
            query: The question, free text; cleaned by `clean_query` (the
                answer's `query` is the text actually searched).
            k: How many hits to return.
            sources: When given, only passages found in these source files count.

        Returns:
            The ranked hits with answer sentences and confidences, and the
            verdict; no hits and not answered when nothing of the question is left.
        """
        query = clean_query(query)
        if not query or k < 1:
            return Answer(query, Verdict.NOT_ANSWERED, ())
        return self.answer(query, self.embedder.encode([query])[0], k, sources)

    def answer(self, query: str, vector: np.ndarray, k: int = 5, sources: frozenset[str] | None = None) -> Answer:
        """`search` for a cleaned question whose vector is already known (evaluation embeds questions in bulk)."""
        ranking = self.rank(query, vector, allowed=self._allowed_rows(sources))
        rows = ranking.rows[:k]
        passages = {row: self.passages[row] for row in rows}
        cosines = {row: sentence_cosines(self.stored.sentences.of(row), vector) for row in rows}
        return build_answer(query, ranking, k, passages, cosines, self.settings, self.confidence, sources)

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
            Passage rows best first (up to `candidates` from each retriever),
            with the score they are ranked by, each retriever's ranks, and the
            parts of every score.
        """
        mode = RetrievalMode.from_str(mode)
        proposed = (
            self.stored.dense.search(vector, self.settings.candidates, allowed)[0]
            if mode is not RetrievalMode.KEYWORD
            else []
        )
        keyword, bm25 = self._keyword(query, allowed) if mode is not RetrievalMode.DENSE else ([], None)
        candidates = np.array(list(dict.fromkeys(proposed + keyword)), dtype=np.int64)
        cosines, best_sentences = self._cosines(candidates, vector)
        scores = bm25[candidates] if bm25 is not None else np.zeros(len(candidates))
        return fuse(Candidates(proposed, keyword, candidates, cosines, best_sentences, scores), self.settings, mode)

    def _cosines(self, rows: np.ndarray, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact cosine of the question with these passages, and with each one's best answer candidate."""
        return candidate_cosines(self.stored.dense.vectors(rows), self.stored.sentences, rows, vector)

    def _allowed_rows(self, sources: frozenset[str] | None) -> np.ndarray | None:
        if sources is None:
            return None
        return self.stored.locations.rows_of_sources(sorted(sources))

    def _keyword(self, query: str, allowed: np.ndarray | None) -> tuple[list[int], np.ndarray]:
        """Top passages by BM25 (only those sharing a term with the query), and all BM25 scores."""
        scores = self.stored.keyword.scores(query)
        if allowed is not None:
            mask = np.zeros(len(scores), dtype=bool)
            mask[allowed] = True
            scores = np.where(mask, scores, 0.0)
        depth = min(self.settings.candidates, int(np.count_nonzero(scores > 0)))
        return top_rows(scores, depth).tolist(), scores

    def answer_span(self, query: str, vector: np.ndarray, row: int) -> Span:
        """The part of passage `row` that best answers `query`, as a span of its document (`answer_span`)."""
        cosines = sentence_cosines(self.stored.sentences.of(row), vector)
        return answer_span(query, self.passages[row], cosines, self.settings)

    def sentence_scores(self, query: str, vector: np.ndarray, row: int) -> tuple[list[tuple[int, int]], np.ndarray]:
        """Each answer candidate of passage `row` (spans in its text) and how well it answers `query`."""
        cosines = sentence_cosines(self.stored.sentences.of(row), vector)
        return sentence_scores(query, self.passages[row].text, cosines, self.settings)

    def context(self, location: Location, before: int = 1, after: int = 1) -> list[Neighbour]:
        """The passages around `location` in its document, in document order.

        A document is its source and its id together: a record's id may equal
        another file's path, or a record id in another file.
        """
        starts, rows = self.stored.locations.document(location.source, location.doc_id)
        at = int(np.searchsorted(starts, location.start))
        if at == len(starts) or starts[at] != location.start:
            raise ValueError(f"{location.cite()} is not a location of this index")
        neighbours = []
        for i in range(max(0, at - before), min(len(starts), at + after + 1)):
            passage = self.passages[int(rows[i])]
            here = (location.source, location.doc_id, int(starts[i]))
            loc = next((loc for loc in passage.locations if (loc.source, loc.doc_id, loc.start) == here), None)
            if loc is not None:  # None only for another document sharing this one's 64-bit key
                neighbours.append(Neighbour(loc, passage.text, i == at))
        return neighbours
