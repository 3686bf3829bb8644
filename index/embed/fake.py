"""Deterministic stand-ins for the model, shipped with the library for tests, benchmarks and Ray workers.

`FakeEmbedder` hashes stemmed words into a small vector space, so texts that
share words are similar and unrelated texts are near-orthogonal: retrieval
behaves like retrieval, in milliseconds, without model weights. It is
registered as the embedder "fake" (`KB_EMBEDDER=fake`), so a subprocess or a
Ray worker gets it by name or by import, with no path set up by hand.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from index.terms import tokenize

_PIECE = re.compile(r"\w+|[^\w\s]")


class FakeEmbedder:
    """Bag of hashed word stems, unit length. Same protocol as the real model.

    Attributes:
        encoded: How many texts it has embedded (tests count re-embedding with it).
    """

    name = "test/fake-hashing-embedder"
    dimensions = 64
    max_tokens = 256

    def __init__(self) -> None:
        self.encoded = 0

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        out = self._hash(texts)
        self.encoded += len(texts)
        if progress is not None and len(texts):
            progress(len(texts))
        return out

    def encode_spans(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The texts' vectors, and each span's vector as the span alone hashes (there is no context to pool)."""
        vectors = self.encode(texts, progress)
        return vectors, [self._hash([text[s:e] for s, e in text_spans]) for text, text_spans in zip(texts, spans)]

    def _hash(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in tokenize(text):
                digest = hashlib.blake2b(token.encode(), digest_size=4).digest()
                out[row, int.from_bytes(digest, "little") % self.dimensions] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out

    def count_tokens(self, text: str) -> int:
        """Words and punctuation marks, plus the two special tokens a real model adds."""
        return len(_PIECE.findall(text)) + 2


class SlowFakeEmbedder(FakeEmbedder):
    """The fake, taking `delay` seconds per call (so a kill can land mid-embedding).

    With `pid_dir`, each call first leaves a file named after its process id
    there, so a test can find a worker that is inside a batch and kill it.
    """

    def __init__(self, delay: float, pid_dir: str | None = None) -> None:
        super().__init__()
        self.delay = delay
        self.pid_dir = Path(pid_dir) if pid_dir else None

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        if self.pid_dir is not None:
            (self.pid_dir / str(os.getpid())).touch()
        time.sleep(self.delay)
        return super().encode(texts, progress)
