"""Questions asked at the same time share one model pass: `BatchingEmbedder`.

A server answers each question in a thread of its own, and each thread asks
the embedder for one vector. `BatchingEmbedder` wraps the embedder so that
those calls are gathered: a call that arrives while no pass is running runs
one at once, with its own text alone, so a lone question never waits; calls
that arrive while a pass is running queue up, and when the pass ends one of
them runs the next pass over all of them (up to `max_batch`). Nothing waits on
a timer: a batch is what queued up during the previous pass, so batches grow
with the load and shrink to one text when the server is quiet.

The vectors are those of separate calls: the bundled model pools each text
from its own word pieces (padding is masked), and the bundled questions give
the same vectors to the bit alone or in batches (tests/test_batching.py).
Only calls for one text are gathered; a call for many texts (an evaluation,
a build) goes straight to the wrapped embedder.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from index.embed.registry import Embedder

# Questions in one pass at most (`Config.batch_questions`, KB_BATCH_QUESTIONS, sets it for a server).
MAX_BATCH = 16
# What one call of the model costs beyond its word pieces, in word pieces: a call over n texts
# padded to L word pieces takes about (PASS_OVERHEAD + n * L) times the cost of one word piece.
# The bundled model on one thread fits about 6 on a busy machine and 9 on an idle one (2.1 ms
# + 0.24 ms per word piece; bench/RESULTS.md, "Speed at the limit: questions in batches"); the
# cuts either makes of the bundled questions' batches cost within 0.3% of each other.
PASS_OVERHEAD = 6


@dataclass
class _Request:
    """One caller's text, and what it gets back: its vector, or the error of its pass."""

    text: str
    turn: threading.Event = field(default_factory=threading.Event)  # set: answered, or this caller leads
    leads: bool = False
    vector: np.ndarray | None = None
    error: BaseException | None = None


@dataclass
class BatchCounts:
    """What a `BatchingEmbedder` has done, for tests and benchmarks.

    Attributes:
        passes: Turns of the wrapped model over gathered questions (`encode_together`: a call per run
            of similar length).
        texts: Questions embedded in those passes.
        waited: Calls that arrived while a pass was running and waited for a later one.
        largest: The most questions one pass held.
    """

    passes: int = 0
    texts: int = 0
    waited: int = 0
    largest: int = 0


class BatchingEmbedder:
    """An `Embedder` whose single-text `encode` calls from concurrent threads share model passes.

    Args:
        embedder: The model that computes the vectors.
        max_batch: Texts in one pass at most; the rest wait for the next.
    """

    def __init__(self, embedder: Embedder, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.embedder = embedder
        self.name = embedder.name
        self.dimensions = embedder.dimensions
        self.max_tokens = embedder.max_tokens
        self.max_batch = max_batch
        self.counts = BatchCounts()
        self._lock = threading.Lock()
        self._queue: deque[_Request] = deque()
        self._running = False

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Unit-length float32 vectors, one row per text; one text may share a pass with other threads' texts."""
        if len(texts) != 1:
            return self.embedder.encode(texts, progress)
        request = _Request(texts[0])
        with self._lock:
            if self._running:
                self._queue.append(request)
                self.counts.waited += 1
            else:
                self._running = True
                request.leads = True
        if not request.leads:
            request.turn.wait()  # answered by another caller's pass, or handed the next pass
        if request.leads:
            self._lead(request)
        if request.error is not None:
            raise request.error
        if progress is not None:
            progress(1)
        return request.vector[np.newaxis]

    def _lead(self, request: _Request) -> None:
        """Run one pass over `request` and what has queued up, then hand the next pass to a waiting caller."""
        with self._lock:
            batch = [request]
            while self._queue and len(batch) < self.max_batch:
                batch.append(self._queue.popleft())
        try:
            self._embed(batch)
        except BaseException as exc:  # every caller of the pass gets its error; none waits forever
            for r in batch:
                r.error = exc
        finally:
            with self._lock:
                self.counts.passes += 1
                self.counts.texts += len(batch)
                self.counts.largest = max(self.counts.largest, len(batch))
                successor = self._queue.popleft() if self._queue else None
                if successor is None:
                    self._running = False
                else:
                    successor.leads = True
            for r in batch[1:]:
                r.turn.set()
            if successor is not None:
                successor.turn.set()

    def _embed(self, batch: list[_Request]) -> None:
        """Each request's vector, from one pass over them all (`encode_together`)."""
        for r, vector in zip(batch, encode_together(self.embedder, [r.text for r in batch])):
            r.vector = vector.copy()  # the caller owns its row

    def encode_spans(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        return self.embedder.encode_spans(texts, spans, progress)

    def count_tokens(self, text: str) -> int:
        return self.embedder.count_tokens(text)


def encode_together(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """The texts' vectors, one model call per run of similar length (`group_by_length`), rows in their order."""
    if len(texts) <= 1:
        return embedder.encode(texts)
    lengths = [min(embedder.count_tokens(text), embedder.max_tokens) for text in texts]
    vectors = np.empty((len(texts), embedder.dimensions), dtype=np.float32)
    for group in group_by_length(lengths):
        vectors[group] = embedder.encode([texts[i] for i in group])
    return vectors


def group_by_length(lengths: Sequence[int], overhead: int = PASS_OVERHEAD) -> list[list[int]]:
    """Texts cut into model calls so that padding costs less than the calls it saves.

    A call pads its texts to the longest, so one call over a 6 and a 30 word-piece
    question computes 60 word pieces where two calls compute 36 and pay `overhead` once more.
    Sorted by length, the cheapest cut into runs is found exactly (16 texts: 136 cuts weighed).

    Args:
        lengths: Word pieces of each text.
        overhead: A call's fixed cost, in word pieces.

    Returns:
        Indices into `lengths`, one list per call, shortest texts first.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    # best[j]: the cheapest cost of the j shortest texts; cut[j]: where its last call begins.
    best, cut = [0] + [0] * len(order), [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        longest = lengths[order[j - 1]]
        best[j], cut[j] = min((best[i] + overhead + (j - i) * longest, i) for i in range(j))
    groups, j = [], len(order)
    while j > 0:
        groups.append(order[cut[j] : j])
        j = cut[j]
    return groups[::-1]
