"""The answer to a question: each hit's answering sentence, its confidence, and the verdict.

Each hit gets its answering sentence: the candidate closest to the question
(context-pooled vectors picked the labelled sentence more often than sentences
embedded alone), nudged towards one stating a quantity when the question asks
for one and away from sentences that are questions themselves; a neighbouring
candidate scoring within `window` of it is highlighted with it, since the two
then answer together. Each hit also gets a confidence, the probability that it
answers (`index.search.confidence`). The question is refused when no passage
the ranking scored reaches `SearchSettings.answer_threshold` (a property of the
model); otherwise it is answered when the best hit's confidence reaches
`SearchSettings.confident`, and shown as "closest passages; these may not
answer" when it does not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from index.records import Answer, Hit, Passage, Span, Verdict
from index.retrievers.dense import row_dots
from index.search.confidence import ConfidenceModel
from index.search.fusion import Ranking
from index.search.sentences import answer_candidates
from index.search.settings import SearchSettings
from index.store.version import SentenceVectors

# Questions that ask for an amount, a duration or a frequency are answered by
# sentences that state one; a small bonus steers the highlight to them.
_QUANTITY_QUESTION = re.compile(
    r"\b(how (long|often|many|much|far|old|soon|high|low)|when"
    r"|what (\w+ )?(percent|percentage|share|proportion|age|number|level|range|reading|amount|dose))\b",
    re.I,
)
# A list item as readers write it: a bullet, or a number and a dot or bracket.
_LIST_ITEM = re.compile(r"(?:•|\d{1,2}[.)])\s")
# A lead-in's list is quoted whole up to this many characters.
_MAX_LIST_QUOTE = 800


_QUANTITY = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|dozen|hundred|thousand|million|billion|percent|"
    r"daily|weekly|hourly|seconds?|minutes?|hours?|days?|weeks?|months?|years?|decades?|times)\b",
    re.I,
)


_ASKS = re.compile(r"\?[\"'”’)\]]*$")


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
        # A list item's own number ("3. Nuts are ...") states no quantity.
        stated = [bool(_QUANTITY.search(s, _LIST_ITEM.match(s).end() if _LIST_ITEM.match(s) else 0)) for s in sentences]
        scores = scores + settings.quantity_bonus * np.array(stated)
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
    return best_span(passage, *sentence_scores(query, passage.text, cosines, settings), settings)


def best_span(passage: Passage, spans: list[tuple[int, int]], scores: np.ndarray, settings: SearchSettings) -> Span:
    """`answer_span` from the passage's candidates already scored (`sentence_scores`)."""
    order = np.argsort(-scores, kind="stable")
    first = second = int(order[0])
    if len(order) > 1 and abs(int(order[1]) - first) == 1 and scores[first] - scores[order[1]] <= settings.window:
        second = int(order[1])
    start, end = spans[min(first, second)][0], spans[max(first, second)][1]
    end = _with_its_list(passage.text, spans, max(first, second), end)
    offset = passage.location.start
    return Span(offset + start, offset + end, passage.text[start:end])


def _with_its_list(text: str, spans: list[tuple[int, int]], last: int, end: int) -> int:
    """Where a quote ends: a lead-in ending in ":" ("The symptoms include:") brings the list items after it."""
    if not text[:end].rstrip().endswith(":"):
        return end
    for start, item_end in spans[last + 1 :]:
        if not _LIST_ITEM.match(text, start) or item_end - spans[last][0] > _MAX_LIST_QUOTE:
            break
        end = item_end
    return end


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


def rerank_by_answer(
    ranking: Ranking,
    cosines: Mapping[int, np.ndarray],
    scored: Mapping[int, tuple[list[tuple[int, int]], np.ndarray]],
    settings: SearchSettings,
) -> Ranking:
    """The ranking with its first `settings.rerank_depth` rows reordered by how well their best sentence answers.

    Each of those rows' fused score moves by `settings.rerank_weight` times
    what the answer step's nudges (`sentence_scores`: a stated quantity for
    "how many", not a question) change its best sentence's score: for "how many nuts a day", the passage
    saying "a handful (30g) each day" comes before the one praising nuts.
    The depth is fixed, so how many hits are shown never changes the order.

    Args:
        cosines / scored: Of at least the first `rerank_depth` rows: their answer candidates'
            cosines, and the candidates with their scores (`sentence_scores` of those cosines).
    """
    top = ranking.rows[: settings.rerank_depth]
    if len(top) < 2:
        return ranking
    moved = {}
    for row in top:
        scores = scored[row][1]
        moved[row] = ranking.scores[row] + settings.rerank_weight * float(scores.max() - cosines[row].max())
    order = sorted(top, key=lambda row: (-moved[row], ranking.rows.index(row)))
    if order == top:
        return ranking
    return replace(ranking, rows=order + ranking.rows[len(top) :])


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
        passages: The passage of each of the top `max(k, settings.rerank_depth)` rows.
        cosines: Each of those rows' answer candidates' cosines with the question (`sentence_cosines`).
        settings: Answer spans and the verdict's thresholds.
        confidence: Turns dense scores in rank order into probabilities that a hit answers.
        sources: The source files the question was limited to: each hit is cited from one of them.
    """
    scored = {row: sentence_scores(query, passage.text, cosines[row], settings) for row, passage in passages.items()}
    ranking = rerank_by_answer(ranking, cosines, scored, settings)
    rows = ranking.rows[:k]
    passages = {row: passages[row].cited_in(sources) for row in rows}
    below = ranking.rows[: k + 1]  # the hit below the last counts too
    dense = [ranking.parts[row].dense for row in below]
    confidences = confidence.probabilities(dense, [agrees(ranking, row) for row in below], ranking.unknown)[: len(rows)]
    hits = tuple(
        Hit(
            passage=passages[row],
            rank=rank,
            score=ranking.scores[row],
            similarity=ranking.parts[row].passage_cosine,
            answer=best_span(passages[row], *scored[row], settings),
            dense_rank=ranking.dense_rank.get(row),
            keyword_rank=ranking.keyword_rank.get(row),
            confidence=float(confidence),
            parts=ranking.parts[row],
        )
        for rank, (row, confidence) in enumerate(zip(rows, confidences), start=1)
    )
    return Answer(query, verdict(hits, ranking, settings), hits)


def agrees(ranking: Ranking, row: int) -> bool:
    """Whether both retrievers rank this passage first: meaning and words point at the same place."""
    return ranking.dense_rank.get(row) == 1 and ranking.keyword_rank.get(row) == 1


def verdict(hits: tuple[Hit, ...], ranking: Ranking, settings: SearchSettings) -> Verdict:
    """Refused when no ranked passage reaches the answer threshold; answered when the best hit is confident.

    The threshold looks at every passage the ranking scored, not only the
    top `k`: how many hits a reader asks for must not change whether the
    question is answered. A first hit that both retrievers rank first is not
    refused by it: everyday wording ("my mum's squashed backbone") lowers the
    cosine of the very passage its words find, and the confidence decides.
    """
    best = max((part.passage_cosine for part in ranking.parts.values()), default=-1.0)
    if not hits or (best < settings.answer_threshold and not agrees(ranking, ranking.rows[0])):
        return Verdict.NOT_ANSWERED
    return Verdict.ANSWERED if hits[0].confidence >= settings.confident else Verdict.UNSURE
