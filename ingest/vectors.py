"""Vectors by content hash: reuse what the live index holds, embed only unseen passages.

A passage's id is a hash of its text, and its answer candidates are a
function of its text, so a passage whose id the live index holds gets that
index's passage vector and answer-sentence vectors back unchanged; only the
others are embedded (passages and their candidates in one call, so the model
sees them in one stream of batches). The result is what a full rebuild
would embed, which is what makes an update equal a rebuild.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from index.embedding import Embedder
from index.records import Passage
from index.sentences import stored_candidates
from index.store import SentenceVectors, StoredIndex


@dataclass(frozen=True)
class PassageVectors:
    """Vectors for a list of passages, row i for passage i.

    Attributes:
        passages: Unit float32 passage vectors.
        sentences: The passages' answer-candidate vectors.
        reused: How many passages came from the live index rather than the embedder.
        embedded: How many texts (passages and candidates) the embedder was given.
    """

    passages: np.ndarray
    sentences: SentenceVectors
    reused: int
    embedded: int


class VectorCache:
    """Passage and answer-candidate vectors keyed by passage id, backed by the live index and an embedder."""

    def __init__(self, embedder: Embedder, live: StoredIndex | None = None) -> None:
        """
        Args:
            embedder: Embeds what the live index does not hold (it must be the index's model).
            live: The index being updated, or None for a build from nothing.
        """
        self.embedder = embedder
        self._live = live
        self._rows = {p.id: row for row, p in enumerate(live.passages)} if live is not None else {}

    def __contains__(self, passage_id: str) -> bool:
        return passage_id in self._rows

    def vectors(
        self, passages: Sequence[Passage], progress: Callable[[int, int], None] | None = None
    ) -> PassageVectors:
        """The vectors of `passages`, in their order.

        Args:
            passages: The passages of the version being built.
            progress: Called as `progress(done, total)` over the texts embedded.
        """
        dimensions = self.embedder.dimensions
        live_rows = [self._rows.get(p.id) for p in passages]
        stored = self._live.sentences if self._live is not None else None
        # A passage reuses its stored candidate vectors, unless the live index predates them.
        reuse_sentences = [row is not None and stored is not None for row in live_rows]
        spans = {i: stored_candidates(p.text) for i, p in enumerate(passages) if not reuse_sentences[i]}
        counts = [
            len(stored.of(row)) if reuse else len(spans[i])
            for i, (row, reuse) in enumerate(zip(live_rows, reuse_sentences))
        ]
        starts = SentenceVectors.starts_for(counts)
        vectors = np.zeros((len(passages), dimensions), dtype=np.float32)
        sentences = np.zeros((int(starts[-1]), dimensions), dtype=np.float32)

        reused = [i for i, row in enumerate(live_rows) if row is not None]
        if reused:
            vectors[reused] = self._live.dense.vectors([live_rows[i] for i in reused])
        for i in reused:
            if reuse_sentences[i]:
                sentences[starts[i] : starts[i + 1]] = stored.of(live_rows[i])

        new = [i for i, row in enumerate(live_rows) if row is None]
        texts = [passages[i].text for i in new]
        sentence_rows: list[int] = []
        for i, candidates in spans.items():
            sentence_rows.extend(range(starts[i], starts[i + 1]))
            texts.extend(passages[i].text[s:e] for s, e in candidates)
        self._embed(texts, new, sentence_rows, vectors, sentences, progress)
        return PassageVectors(vectors, SentenceVectors(sentences, starts), len(reused), len(texts))

    def _embed(self, texts, new, sentence_rows, vectors, sentences, progress) -> None:
        """Embed `texts` (the new passages, then the candidates) in one call and write each row in place."""
        done = 0
        if progress is not None:
            progress(0, len(texts))

        def advance(count: int) -> None:
            nonlocal done
            done += count
            progress(done, len(texts))

        if texts:
            embedded = self.embedder.encode(texts, progress=advance if progress is not None else None)
            vectors[new] = embedded[: len(new)]
            sentences[sentence_rows] = embedded[len(new) :]
