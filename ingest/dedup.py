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

Every passage's signature (a 128-bit hash of its normalised text and its
MinHash) is stored with the index (`SCHEME` names the layout). An update
runs the same pass over the whole collection, in corpus order, so it merges
exactly what a full build would; but a chunk whose text the live index holds
takes its signature from there, so only new text is normalised, shingled
and hashed, and a shingle set is computed only to confirm a candidate.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from functools import lru_cache

import numpy as np
from datasketch import MinHashLSH

from index.records import Passage, indexed_text, text_id
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
_KEY_WORDS = 4  # the normalised text's 128-bit hash, as four uint32 words
# A stored signature row: the key, then the MinHash (every value is below 2**32).
SCHEME = f"blake2b-128-key/minhash-{_NUM_PERM}-of-{_SHINGLE}-shingles/uint32/v1"
SIGNATURE_WORDS = _KEY_WORDS + _NUM_PERM
_KEPT_SHINGLE_SETS = 4096


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
    merged = Deduplicator(threshold)
    for chunk in chunks:
        merged.add(chunk)
    return merged.passages()


class Deduplicator:
    """`deduplicate` one chunk at a time, in corpus order: a passage exists as soon as its first chunk is added.

    Known signatures (`known`, by passage id: a live index's) are taken
    instead of computed; the result is the same either way.
    """

    def __init__(self, threshold: float, known: Callable[[str], np.ndarray | None] | None = None) -> None:
        """
        Args:
            threshold: As for `deduplicate`.
            known: The stored signature row (`SCHEME`) of a passage id, or None when unknown.
        """
        self.threshold = threshold
        self._known = known
        self._by_key: dict[bytes, int] = {}
        self._bands = _Bands(max(0.5, threshold - _CANDIDATE_SLACK)) if threshold < 1.0 else None
        self._texts: list[str] = []
        self._locations: list[list] = []
        # Grown by doubling: one block, rather than a small array per passage scattered among
        # the shingle sets that are freed after dedup (which kept that memory from the system).
        self._signatures = np.empty((1024, SIGNATURE_WORDS), dtype=np.uint32)
        # Shingle sets only of recent candidates: every passage's would be about 2 KB each for
        # the whole build, and only near copies (rare) are ever compared.
        self._grams: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, chunk: Chunk) -> int | None:
        """Merge `chunk` into the passage it duplicates, or make it a new passage.

        Returns:
            The new passage's number (in order of first occurrence), or None when `chunk` was a duplicate.
        """
        # Nothing small is kept per passage while the LSH bands grow: objects left among theirs
        # would keep that memory from the system after dedup (ids are made in `passages`).
        stored = self._known(text_id(chunk.indexed_text)) if self._known is not None else None
        normalised = None
        if stored is not None:
            key = stored[:_KEY_WORDS].tobytes()
        else:
            normalised = normalise(chunk.indexed_text)
            key = hashlib.blake2b(normalised.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        index = self._by_key.get(key)
        minhash, grams = None, None
        if index is None:
            if stored is not None:
                minhash = np.asarray(stored[_KEY_WORDS:], dtype=np.uint64)
            else:
                grams = _shingles(normalised)
                minhash = _signature(grams)
            if self._bands is not None:
                candidates = self._bands.query(minhash)
                if candidates:
                    if grams is None:
                        grams = _shingles(normalise(chunk.indexed_text))
                    index = _confirmed(candidates, grams, self._grams_of, self.threshold)
                if index is None:
                    self._bands.insert(len(self._texts), minhash)
        new = index is None
        if new:
            index = len(self._texts)
            self._texts.append(chunk.text)
            self._locations.append([])
            if index == len(self._signatures):
                self._signatures = np.concatenate([self._signatures, np.empty_like(self._signatures)])
            self._signatures[index, :_KEY_WORDS] = np.frombuffer(key, dtype=np.uint32)
            self._signatures[index, _KEY_WORDS:] = minhash
        self._by_key.setdefault(key, index)
        self._locations[index].append(chunk.location)
        return index if new else None

    def text(self, index: int) -> str:
        """The text of passage `index` (in order of first occurrence)."""
        return self._texts[index]

    def passages(self) -> list[Passage]:
        """The passages so far, in order of first occurrence, each with every location."""
        return [
            Passage(text_id(indexed_text(text, locs[0].section)), text, tuple(locs))
            for text, locs in zip(self._texts, self._locations)
        ]

    def signatures(self) -> np.ndarray:
        """Row i: passage i's signature (`SCHEME`), to store with the index."""
        return self._signatures[: len(self._texts)].copy()

    def _grams_of(self, index: int) -> np.ndarray:
        grams = self._grams.get(index)
        if grams is None:
            if len(self._grams) >= _KEPT_SHINGLE_SETS:
                del self._grams[next(iter(self._grams))]  # the oldest
            grams = self._grams[index] = _shingles(
                normalise(indexed_text(self._texts[index], self._locations[index][0].section))
            )
        return grams


def _confirmed(
    candidates: Iterable[int], grams: np.ndarray, known: Callable[[int], np.ndarray], threshold: float
) -> int | None:
    """The earliest candidate whose true similarity reaches the threshold."""
    matches = [i for i in candidates if jaccard(grams, known(i)) >= threshold]
    return min(matches) if matches else None
