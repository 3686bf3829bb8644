"""Collapse exact and near-duplicate passages into one passage with many locations.

Collections repeat themselves: the bundled file repeats whole paragraphs,
web pages share boilerplate, records get re-published with a word changed.
A question must never get the same text twice, yet every place a text
appears is worth citing. So the first occurrence (in corpus order) becomes
the passage and later copies become extra locations of it.

Exact copies are caught by a normalised key (case, spacing and punctuation
ignored). Near copies are caught by MinHash LSH over word 3-shingles
(datasketch), and each candidate is confirmed by its true Jaccard similarity
so LSH false positives never merge distinct texts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from datasketch import MinHash, MinHashLSH

from index.records import Passage, text_id
from ingest.chunking import Chunk

_TOKEN = re.compile(r"\w+")
_NUM_PERM = 128
# LSH only proposes candidates, each confirmed by exact Jaccard; a looser LSH
# threshold makes a missed near-duplicate at the real threshold rare (<3% at 0.85).
_CANDIDATE_SLACK = 0.15
_SHINGLE = 3
# Every signature uses the same seed's permutations: made once, not per passage
# (generating them was a quarter of de-duplication time).
_SEED_SKETCH = MinHash(num_perm=_NUM_PERM, seed=1)


def normalise(text: str) -> str:
    """The exact-duplicate key: lowercase words joined by single spaces."""
    return " ".join(_TOKEN.findall(text.lower()))


def shingles(text: str) -> frozenset[str]:
    """Word 3-shingles of the normalised text (the whole text when shorter)."""
    words = normalise(text).split()
    if len(words) <= _SHINGLE:
        return frozenset([" ".join(words)])
    return frozenset(" ".join(words[i : i + _SHINGLE]) for i in range(len(words) - _SHINGLE + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def deduplicate(chunks: Iterable[Chunk], threshold: float) -> list[Passage]:
    """Merge duplicate chunks.

    Args:
        chunks: Chunks in corpus order (sources sorted, offsets ascending).
        threshold: Jaccard similarity of 3-shingles at or above which two
            chunks are the same text; 1.0 keeps only exact (normalised) copies.

    Returns:
        Passages in order of first occurrence; each keeps every location.
    """
    # Keys and shingle sets are not kept per passage: on a big corpus they
    # would hold several times the text's size. A 16-byte digest stands for the
    # key, and shingles are recomputed only for the few LSH candidates.
    by_key: dict[bytes, int] = {}
    texts: list[str] = []
    locations: list[list] = []
    lsh = _Bands(max(0.5, threshold - _CANDIDATE_SLACK)) if threshold < 1.0 else None
    for chunk in chunks:
        key = hashlib.blake2b(normalise(chunk.text).encode("utf-8"), digest_size=16).digest()
        index = by_key.get(key)
        if index is None and lsh is not None:
            grams = shingles(chunk.text)
            signature = MinHash(
                num_perm=_NUM_PERM, seed=1, permutations=_SEED_SKETCH.permutations, scheme=_SEED_SKETCH.scheme
            )
            signature.update_batch([g.encode("utf-8") for g in grams])
            index = _confirmed(lsh.query(signature), grams, texts, threshold)
            if index is None:
                lsh.insert(len(texts), signature)
        if index is None:
            index = len(texts)
            texts.append(chunk.text)
            locations.append([])
        by_key.setdefault(key, index)
        locations[index].append(chunk.location)
    return [Passage(text_id(text), text, tuple(locs)) for text, locs in zip(texts, locations)]


class _Bands:
    """MinHash LSH banding with datasketch's band sizes, one small int per passage and band.

    datasketch's MinHashLSH keeps a bytes key and a set per band and passage
    (about 5 KB a passage: 360 MB for 72,000 passages). Here a band's bucket
    is the Python hash of its values and holds a passage number, or a list
    when several share it; a hash collision only adds a candidate, and every
    candidate is confirmed by exact Jaccard similarity anyway.
    """

    def __init__(self, threshold: float) -> None:
        self.ranges = MinHashLSH(threshold=threshold, num_perm=_NUM_PERM).hashranges  # its optimal (bands, rows)
        self.tables: list[dict[int, int | list[int]]] = [{} for _ in self.ranges]

    def _buckets(self, signature: MinHash) -> list[int]:
        values = signature.hashvalues
        return [hash(values[start:end].tobytes()) for start, end in self.ranges]

    def query(self, signature: MinHash) -> set[int]:
        found: set[int] = set()
        for table, bucket in zip(self.tables, self._buckets(signature)):
            members = table.get(bucket)
            if members is not None:
                found.update(members if isinstance(members, list) else (members,))
        return found

    def insert(self, number: int, signature: MinHash) -> None:
        for table, bucket in zip(self.tables, self._buckets(signature)):
            members = table.setdefault(bucket, number)
            if members is not number:
                if isinstance(members, list):
                    members.append(number)
                else:
                    table[bucket] = [members, number]


def _confirmed(candidates: set[int], grams: frozenset[str], texts: list[str], threshold: float) -> int | None:
    """The earliest candidate whose true similarity reaches the threshold."""
    matches = [i for i in sorted(candidates) if jaccard(grams, shingles(texts[i])) >= threshold]
    return min(matches) if matches else None
