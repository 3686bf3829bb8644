"""Answering a question from a stored index: `Searcher`, over one loaded version.

Search runs the question through two retrievers over the same passages and
fuses them (`index.search.fusion`):

- dense: each passage is scored by its own cosine similarity with the
  question and by its best answer candidate's (a sentence vector pooled from
  the passage's own forward pass, `index.embed.pooling`), weighted by
  `SearchSettings.sentence_weight`. A passage whose one sentence answers while
  the rest is about something else is found that way; candidates come from
  the passage vectors (`index.retrievers.dense`: exact, or for very large
  collections approximate and re-scored exactly);
- keyword: BM25 (`index.retrievers.keyword`).

The answer (sentences, confidence, verdict) is built by `index.search.answer`.
Every setting is in `index.search.settings.SearchSettings`, chosen on four
development sets at once by `bench/tune.py` (bench/RESULTS.md).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from threading import Lock

import numpy as np

from index.config import DEFAULT_ANSWERS_KEPT
from index.embed.registry import Embedder
from index.errors import ModelMismatch, rebuild_fix
from index.records import Answer, Location, Passage, Span, Verdict
from index.search.answer import (
    answer_span,
    build_answer,
    candidate_cosines,
    sentence_cosines,
    sentence_scores,
)
from index.search.confidence import ConfidenceModel
from index.search.filters import Where, select
from index.search.fusion import Candidates, Ranking, fuse
from index.search.mentions import MentionFinder, Mentions
from index.search.query import clean_query
from index.search.salience import unknown_rarity
from index.search.settings import RetrievalMode, SearchSettings
from index.search.spelling import Speller
from index.store.reader import StoredIndex


@dataclass(frozen=True)
class Neighbour:
    """A passage next to a hit in the same document, for showing context."""

    location: Location
    text: str
    is_hit: bool


_SURENESS = {Verdict.NOT_ANSWERED: 0, Verdict.UNSURE: 1, Verdict.ANSWERED: 2}


class Searcher:
    """Questions in, cited passages out, over one loaded index."""

    def __init__(
        self,
        stored: StoredIndex,
        embedder: Embedder,
        settings: SearchSettings = SearchSettings(),
        confidence: ConfidenceModel | None = None,
        answers_kept: int = DEFAULT_ANSWERS_KEPT,
    ) -> None:
        """
        Args:
            stored: The loaded index version.
            embedder: Embeds the questions (the index's own model).
            settings: Search settings (defaults chosen on the development sets).
            confidence: The confidence model (default: the bundled one).
            answers_kept: How many answers to keep for repeated questions (0: none; `Config.answers_kept`).
        """
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
        # A searcher reads one index version, so the answers it keeps are that version's.
        self._answers: OrderedDict[tuple, Answer] = OrderedDict()
        self._answers_lock = Lock()
        self._answers_kept = answers_kept

    @property
    def passages(self) -> Sequence[Passage]:
        """The index's passages, read by row (`index.store.passages.PassageFile`)."""
        return self.stored.passages

    def search(
        self,
        query: str,
        k: int = 5,
        sources: frozenset[str] | None = None,
        where: Where | None = None,
        suggest: bool = True,
    ) -> Answer:
        """Answer one question.

        Args:
            query: The question, free text; cleaned by `clean_query` (the
                answer's `query` is the text actually searched).
            k: How many hits to return.
            sources: When given, only passages found in these source files count.
            where: When given, only passages of the documents it admits count (`index.search.filters`).
            suggest: Suggest a corrected question when a word looks misspelt ("did you mean"), and
                when the question as typed finds nothing confident, answer the suggestion instead
                if it finds something surer (then `corrected` is set).

        Returns:
            The ranked hits with answer sentences and confidences, and the
            verdict; no hits and not answered when nothing of the question is left.

        Raises:
            FilterError: `where` filters by title or tag and the index does not keep them.
        """
        key = (clean_query(query), k, None if sources is None else frozenset(sources), where, suggest)
        with self._answers_lock:
            if key in self._answers:
                self._answers.move_to_end(key)
                return self._answers[key]
        answer = self._search(*key)
        with self._answers_lock:
            self._answers[key] = answer
            while len(self._answers) > self._answers_kept:
                self._answers.popitem(last=False)
        return answer

    def _search(self, query: str, k: int, sources: frozenset[str] | None, where: Where | None, suggest: bool) -> Answer:
        """`search` of a cleaned question, not cached."""
        if not query or k < 1:
            return Answer(query, Verdict.NOT_ANSWERED, ())
        answer = self.answer(query, self.embedder.encode([query])[0], k, sources, where)
        suggestion = self.speller.suggest(query) if suggest else None
        if suggestion is None:
            return answer
        if answer.verdict is not Verdict.ANSWERED:
            # Nothing confident for the question as typed: ask the corrected one as well, and keep
            # its answer when it is surer (a clean question that happens to hold a rare word keeps its own).
            better = self.answer(suggestion, self.embedder.encode([suggestion])[0], k, sources, where)
            if _SURENESS[better.verdict] > _SURENESS[answer.verdict]:
                return replace(better, query=query, suggestion=suggestion, corrected=True)
        return replace(answer, suggestion=suggestion)

    @cached_property
    def speller(self) -> Speller:
        """Corrects misspelt words from this index's vocabulary (`index.search.spelling`)."""
        return Speller(self.stored.vocabulary, self.stored.keyword.vocabulary)

    def answer(
        self,
        query: str,
        vector: np.ndarray,
        k: int = 5,
        sources: frozenset[str] | None = None,
        where: Where | None = None,
    ) -> Answer:
        """`search` for a cleaned question whose vector is already known (evaluation embeds questions in bulk)."""
        allowed = self._allowed_rows(sources)
        if where:
            selection = select(self.stored, where, sources)
            allowed, sources = selection.rows, selection.sources
        ranking = self.rank(query, vector, allowed=allowed)
        rows = ranking.rows[: max(k, self.settings.rerank_depth)]
        passages = {row: self.passages[row] for row in rows}
        cosines = {row: sentence_cosines(self.stored.sentences.of(row), vector) for row in rows}
        return build_answer(query, ranking, k, passages, cosines, self.settings, self.confidence, sources)

    @cached_property
    def finder(self) -> MentionFinder:
        """Finds every mention of a phrase in this index (`index.search.mentions`)."""
        return MentionFinder(self.stored)

    def mentions(self, phrase: str, where: Where | None = None, sources: frozenset[str] | None = None) -> Mentions:
        """Every mention of `phrase` (`MentionFinder.find`), in the documents `where` admits (of `sources`)."""
        return self.finder.find(phrase, where, sources)

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
        keyword, bm25 = [], None
        if mode is not RetrievalMode.DENSE:
            rows, bm25 = self.stored.keyword.search(query, self.settings.candidates, allowed)
            keyword = rows.tolist()
        candidates = np.array(list(dict.fromkeys(proposed + keyword)), dtype=np.int64)
        cosines, best_sentences = self._cosines(candidates, vector)
        scores = bm25[candidates] if bm25 is not None else np.zeros(len(candidates))
        unknown = unknown_rarity(query, self.stored.keyword.vocabulary) if self.stored.keyword is not None else 0.0
        return fuse(
            Candidates(proposed, keyword, candidates, cosines, best_sentences, scores, unknown), self.settings, mode
        )

    def _cosines(self, rows: np.ndarray, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact cosine of the question with these passages, and with each one's best answer candidate."""
        return candidate_cosines(self.stored.dense.vectors(rows), self.stored.sentences, rows, vector)

    def _allowed_rows(self, sources: frozenset[str] | None) -> np.ndarray | None:
        if sources is None:
            return None
        return self.stored.locations.rows_of_sources(sorted(sources))

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
