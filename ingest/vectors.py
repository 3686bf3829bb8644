"""Vectors by content hash: reuse what the live index holds, embed only unseen passages.

A passage's id is a hash of its text, and its answer candidates are a
function of its text, so a passage whose id the live index holds gets that
index's passage vector and answer-candidate vectors back unchanged; only the
others are embedded, each in one forward pass that gives the passage's
vector and, pooled from the same token embeddings, its candidates' vectors
(`Embedder.encode_spans`). The result is what a full rebuild would embed,
which is what makes an update equal a rebuild.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from index.embed.registry import Embedder
from index.records import Passage
from index.search.sentences import answer_candidates
from index.store.reader import StoredIndex
from index.store.version import SentenceVectors


@dataclass(frozen=True)
class PassageVectors:
    """Vectors for a list of passages, row i for passage i.

    Attributes:
        passages: Unit float32 passage vectors.
        sentences: The passages' answer-candidate vectors.
        reused: How many passages came from the live index rather than the embedder.
        embedded: How many passages the embedder was given.
        live_rows: Each passage's row in the live index, or None for one embedded now.
    """

    passages: np.ndarray
    sentences: SentenceVectors
    reused: int
    embedded: int
    live_rows: list[int | None]


class VectorCache:
    """Passage and answer-candidate vectors keyed by passage id, backed by the live index and an embedder."""

    def __init__(
        self, embedder: Embedder, live: StoredIndex | None = None, live_ids: Sequence[str] | None = None
    ) -> None:
        """
        Args:
            embedder: Embeds what the live index does not hold (it must be the index's model).
            live: The index being updated, or None for a build from nothing.
            live_ids: The ids of `live`'s passages by row, when the caller has read them already.
        """
        self.embedder = embedder
        self._live = live
        if live_ids is None and live is not None:
            live_ids = [p.id for p in live.passages]
        self._rows = {pid: row for row, pid in enumerate(live_ids or ())}

    def __contains__(self, passage_id: str) -> bool:
        return passage_id in self._rows

    def live_row(self, passage_id: str) -> int | None:
        """The passage's row in the live index, or None."""
        return self._rows.get(passage_id)

    def vectors(
        self, passages: Sequence[Passage], progress: Callable[[int, int], None] | None = None
    ) -> PassageVectors:
        """The vectors of `passages`, in their order.

        Args:
            passages: The passages of the version being built.
            progress: Called as `progress(done, total)` over the passages embedded.
        """
        live_rows = [self._rows.get(p.id) for p in passages]
        new = [i for i, row in enumerate(live_rows) if row is None]
        spans = {i: answer_candidates(passages[i].text) for i in new}
        counts = [len(spans[i]) if row is None else self._live.sentences.count(row) for i, row in enumerate(live_rows)]
        starts = SentenceVectors.starts_for(counts)
        vectors = np.zeros((len(passages), self.embedder.dimensions), dtype=np.float32)
        sentences = np.zeros((int(starts[-1]), self.embedder.dimensions), dtype=np.float32)

        reused = [i for i, row in enumerate(live_rows) if row is not None]
        if reused:
            vectors[reused] = self._live.dense.vectors([live_rows[i] for i in reused])
        for i in reused:
            sentences[starts[i] : starts[i + 1]] = self._live.sentences.of(live_rows[i])

        # The model reads each passage after its heading path; its candidates' spans move with the text.
        shifts = {i: len(passages[i].indexed_text) - len(passages[i].text) for i in new}
        embedded, candidate_vectors = self._embed(
            [passages[i].indexed_text for i in new],
            [[(s + shifts[i], e + shifts[i]) for s, e in spans[i]] for i in new],
            progress,
        )
        if new:
            vectors[new] = embedded
        for i, rows in zip(new, candidate_vectors):
            sentences[starts[i] : starts[i + 1]] = rows
        return PassageVectors(vectors, SentenceVectors(sentences, starts), len(reused), len(new), live_rows)

    def _embed(self, texts, spans, progress) -> tuple[np.ndarray, list[np.ndarray]]:
        """Embed the new passages with their candidates, reporting progress over the passages."""
        done = 0
        if progress is not None:
            progress(0, len(texts))

        def advance(count: int) -> None:
            nonlocal done
            done += count
            progress(done, len(texts))

        if not texts:
            return np.zeros((0, self.embedder.dimensions), dtype=np.float32), []
        return self.embedder.encode_spans(texts, spans, progress=advance if progress is not None else None)
