"""Collapse exact and near-duplicate passages into one passage with many locations.

Collections repeat themselves: the bundled file repeats whole paragraphs,
web pages share boilerplate, records get re-published with a word changed.
A question must never get the same text twice, yet every place a text
appears is worth citing. So the first occurrence (in corpus order) becomes
the passage and later copies become extra locations of it.

Exact copies are caught by a normalised key (case, spacing and punctuation
ignored). Near copies are caught by MinHash LSH over word 3-shingles (band
layout from datasketch, hashing vectorised with numpy), and each candidate is
confirmed by its true Jaccard similarity so LSH false positives never merge
distinct texts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
from datasketch import MinHashLSH

from index.records import Passage, text_id
from ingest.chunking import Chunk

_TOKEN = re.compile(r"\w+")
_NUM_PERM = 128
# LSH only proposes candidates, each confirmed by exact Jaccard; a looser LSH
# threshold makes a missed near-duplicate at the real threshold rare (<3% at 0.85).
_CANDIDATE_SLACK = 0.15
_SHINGLE = 3
# MinHash with multiply-shift hashing of 64-bit shingle hashes, vectorised
# with numpy: hashing each shingle string in Python (datasketch's
# MinHash.update_batch) took most of an update's time on SciFact.
_MULTIPLIERS, _OFFSETS = np.random.default_rng(1).integers(1, 2**63, size=(2, _NUM_PERM), dtype=np.uint64)
_MULTIPLIERS |= np.uint64(1)  # odd multipliers keep the map a bijection
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 1], dtype=np.uint64)


def normalise(text: str) -> str:
    """The exact-duplicate key: lowercase words joined by single spaces."""
    return " ".join(_TOKEN.findall(text.lower()))


@lru_cache(maxsize=1 << 20)
def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


def shingles(text: str) -> np.ndarray:
    """Word 3-shingles of the normalised text (the whole text when shorter), as sorted unique 64-bit hashes."""
    return _shingles(normalise(text))


def _shingles(normalised: str) -> np.ndarray:
    words = np.array([_word_hash(w) for w in normalised.split()], dtype=np.uint64)
    if len(words) <= _SHINGLE:
        padded = np.zeros(_SHINGLE, dtype=np.uint64)
        padded[: len(words)] = words
        return np.array([(padded * _MIX).sum()], dtype=np.uint64)
    grams = words[:-2] * _MIX[0] + words[1:-1] * _MIX[1] + words[2:]  # wraps modulo 2**64
    return np.unique(grams)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two `shingles` sets."""
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


def _signature(grams: np.ndarray) -> np.ndarray:
    """MinHash: per permutation, the least (a·x + b) mod 2**64 >> 32 over the shingles."""
    return ((grams[:, None] * _MULTIPLIERS + _OFFSETS) >> np.uint64(32)).min(axis=0)


class _Bands:
    """LSH tables over MinHash bands (band layout from datasketch for the threshold)."""

    def __init__(self, threshold: float) -> None:
        layout = MinHashLSH(threshold=threshold, num_perm=_NUM_PERM)
        self.ranges = layout.hashranges
        self.tables: list[dict[bytes, list[int]]] = [{} for _ in self.ranges]

    def query(self, signature: np.ndarray) -> set[int]:
        found: set[int] = set()
        for (start, end), table in zip(self.ranges, self.tables):
            found.update(table.get(signature[start:end].tobytes(), ()))
        return found

    def insert(self, key: int, signature: np.ndarray) -> None:
        for (start, end), table in zip(self.ranges, self.tables):
            table.setdefault(signature[start:end].tobytes(), []).append(key)


def deduplicate(chunks: Iterable[Chunk], threshold: float) -> list[Passage]:
    """Merge duplicate chunks.

    Args:
        chunks: Chunks in corpus order (sources sorted, offsets ascending).
        threshold: Jaccard similarity of 3-shingles at or above which two
            chunks are the same text; 1.0 keeps only exact (normalised) copies.

    Returns:
        Passages in order of first occurrence; each keeps every location.
    """
    by_key: dict[str, int] = {}
    texts: list[str] = []
    locations: list[list] = []
    shingle_sets: list[np.ndarray] = []
    bands = _Bands(max(0.5, threshold - _CANDIDATE_SLACK)) if threshold < 1.0 else None
    for chunk in chunks:
        key = normalise(chunk.text)
        index = by_key.get(key)
        grams = np.zeros(0, dtype=np.uint64)
        if index is None and bands is not None:
            grams = _shingles(key)
            signature = _signature(grams)
            index = _confirmed(bands.query(signature), grams, shingle_sets, threshold)
            if index is None:
                bands.insert(len(texts), signature)
        if index is None:
            index = len(texts)
            texts.append(chunk.text)
            locations.append([])
            shingle_sets.append(grams)
        by_key.setdefault(key, index)
        locations[index].append(chunk.location)
    return [Passage(text_id(text), text, tuple(locs)) for text, locs in zip(texts, locations)]


def _confirmed(candidates: Iterable[int], grams: np.ndarray, known: list[np.ndarray], threshold: float) -> int | None:
    """The earliest candidate whose true similarity reaches the threshold."""
    matches = [i for i in candidates if jaccard(grams, known[i]) >= threshold]
    return min(matches) if matches else None
