"""The model's word pieces: counting them, and cutting texts into batches by their length.

The bundled model's tokenizer is the one in its `tokenizer.json`, run with
the `tokenizers` library directly: the same word pieces and character
offsets as transformers' `AutoTokenizer` (checked against it in
tests/test_embedding.py), without importing transformers and torch (seconds
of every start-up: bench/RESULTS.md, "Importing torch at start-up"), without Python overhead per call, and safe to share
between threads (its settings are fixed once, never changed per call).

Batches are cut by token length, not by a count of texts: texts are sorted
longest first and a batch takes texts while its padded size (texts times
the longest) stays within a budget, so short texts travel in large batches,
long ones in small ones, and almost no padding is computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Padded word pieces per forward pass. Matrix products of a few thousand rows
# keep both cores busy; bench/RESULTS.md ("Embedding batches") has the sweep.
BATCH_TOKENS = 4096
# And texts per pass, so a run of very short texts does not make one huge batch.
BATCH_TEXTS = 256


@dataclass(frozen=True)
class TokenArrays:
    """A padded batch: word-piece ids, the mask of real tokens and each token's character offsets.

    Shapes are (texts, tokens), (texts, tokens) and (texts, tokens, 2);
    padding is on the right, with mask 0 and offsets (0, 0).
    """

    ids: np.ndarray
    mask: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


class WordPieces:
    """A model's tokenizer (its `tokenizer.json`), truncating at `max_tokens` when texts are encoded for the model."""

    def __init__(self, path: Path, max_tokens: int) -> None:
        """
        Args:
            path: The model's `tokenizer.json`.
            max_tokens: Word pieces the model reads, special tokens included; longer texts are cut.
        """
        from tokenizers import Tokenizer

        self.max_tokens = max_tokens
        self._counter = Tokenizer.from_file(str(path))
        self._counter.no_truncation()
        self._counter.no_padding()
        self._reader = Tokenizer.from_file(str(path))
        self._reader.enable_truncation(max_tokens)
        self._reader.no_padding()

    def count(self, text: str) -> int:
        """Word pieces in `text`, special tokens included, without truncation."""
        return len(self._counter.encode(text).ids)

    def counts(self, texts: Sequence[str]) -> list[int]:
        """`count` of each text, in one call (the library spreads a batch over the cores)."""
        return [len(encoding.ids) for encoding in self._counter.encode_batch(list(texts))] if texts else []

    def encode(self, texts: Sequence[str]) -> list:
        """Each text's `tokenizers.Encoding` as the model reads it (cut at `max_tokens`), unpadded."""
        return self._reader.encode_batch(list(texts)) if texts else []

    def arrays(self, texts: Sequence[str]) -> TokenArrays:
        """The texts as one padded batch."""
        return pad(self.encode(texts))


def pad(encodings: Sequence) -> TokenArrays:
    """Encodings as one right-padded batch (int64 ids and mask, as the exported graph takes them)."""
    width = max((len(e.ids) for e in encodings), default=0)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    offsets = np.zeros((len(encodings), width, 2), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        n = len(encoding.ids)
        ids[row, :n] = encoding.ids
        mask[row, :n] = encoding.attention_mask
        offsets[row, :n] = encoding.offsets
    return TokenArrays(ids, mask, offsets)


def plan_batches(
    lengths: Sequence[int], max_tokens: int = BATCH_TOKENS, max_texts: int = BATCH_TEXTS
) -> list[np.ndarray]:
    """Group text rows into batches by length: longest first, each batch padded to its first text.

    Args:
        lengths: Word pieces of each text (as the model reads it).
        max_tokens: A batch's padded size (texts times its longest) stays within this,
            except that a batch always holds at least one text.
        max_texts: Texts per batch at most.

    Returns:
        Row numbers of each batch; every row appears in exactly one.
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    batches: list[np.ndarray] = []
    begin = 0
    while begin < len(order):
        longest = max(1, int(lengths[order[begin]]))
        size = max(1, min(max_texts, max_tokens // longest))
        batches.append(order[begin : begin + size])
        begin += size
    return batches
