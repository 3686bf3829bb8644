"""Token embeddings into vectors: a text's mean-pooled vector, and one vector per span of it.

all-MiniLM-L6-v2 makes a text's vector by averaging the final-layer
embeddings of all its tokens (special tokens included) and normalising.
The same average over just the tokens of one sentence gives that sentence a
vector that was computed in its passage's context, from the passage's own
forward pass: a passage and all its answer candidates cost one model call
instead of one call each. Measured on the bundled question sets, these
context-pooled sentence vectors also pick the answering sentence more often
than embedding each sentence alone (bench/RESULTS.md, "Tried for the answer sentence and not adopted").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """`vectors` scaled to unit length row by row (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Unit mean of each text's token embeddings, as sentence-transformers pools them.

    Args:
        hidden: Token embeddings, shape (texts, tokens, dimensions), padded.
        mask: 1 for real tokens (special tokens included), 0 for padding, shape (texts, tokens).
    """
    weights = mask[..., None].astype(np.float32)
    return unit_rows((hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9))


def pool_spans(
    hidden: np.ndarray, offsets: np.ndarray, spans: Sequence[tuple[int, int]], whole: np.ndarray
) -> np.ndarray:
    """Unit vectors of character spans of one text, pooled from that text's token embeddings.

    Args:
        hidden: The text's token embeddings, shape (tokens, dimensions), padding removed.
        offsets: Each token's (start, end) characters in the text; special tokens have start == end.
        spans: (start, end) character spans of the text.
        whole: The text's own vector: the span's vector when none of its tokens
            was read (a span past the model's 256 tokens).

    Returns:
        One row per span. A token belongs to a span when its characters lie in
        it; a span that cuts through a word takes the tokens that overlap it.
    """
    out = np.empty((len(spans), hidden.shape[1]), dtype=np.float32)
    starts, ends = offsets[:, 0], offsets[:, 1]
    real = ends > starts
    for row, (start, end) in enumerate(spans):
        inside = real & (starts >= start) & (ends <= end)
        if not inside.any():
            inside = real & (starts < end) & (ends > start)
        out[row] = hidden[inside].mean(axis=0) if inside.any() else whole
    return unit_rows(out)


class TokenBatch:
    """One forward pass over a batch of texts: their token embeddings, padding mask and character offsets.

    Tokens are right-padded, so text i's real tokens are the first `mask[i].sum()`.
    """

    def __init__(self, hidden: np.ndarray, mask: np.ndarray, offsets: np.ndarray) -> None:
        self.hidden = hidden
        self.mask = mask
        self.offsets = offsets

    def vectors(self) -> np.ndarray:
        """Each text's unit vector (mean pooling, as the model was trained)."""
        return mean_pool(self.hidden, self.mask)

    def span_vectors(self, i: int, spans: Sequence[tuple[int, int]], whole: np.ndarray) -> np.ndarray:
        """Unit vectors of `spans` of text i, from its own token embeddings (see `pool_spans`)."""
        n = int(self.mask[i].sum())
        return pool_spans(self.hidden[i, :n], self.offsets[i, :n], spans, whole)
