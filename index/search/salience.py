"""Whether a question names something the collection never mentions: a signal against "answered".

"What dose of metformin should I take?" asked of leaflets that never say
"metformin" finds passages about doses, confidently, and none answers. A
word of the question that no passage contains, that is no misspelling of a
word they do contain, and that is rare in English (a drug, a code, a name,
not "mum" or "squashed") is such a sign. The measure is the rarest such
word's rarity, from English word frequencies (symspellpy's dictionary,
82,765 words counted on a web corpus): 0 when every word is known to the
collection, up to 1 for a word English hardly uses. It means the same on
any collection, so the confidence model can weigh it (`index.search.confidence`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from functools import cache

import numpy as np

from index.terms import tokenize

_WORD = re.compile(r"[^\W\d_]{4,}")  # shorter words are abbreviations or typing ("u", "wat"): no evidence
# Words typed without their apostrophe: function words, not the subject of the question.
_CONTRACTIONS = frozenset(
    "isnt arent wasnt werent dont doesnt didnt cant couldnt wont wouldnt shouldnt hasnt havent hadnt "
    "youre theyre were ive youve weve theyve itll youll thats whats wheres theres".split()
)
_RARITY_CAP = 12.0  # log10 of the corpus size, about: a word never seen


def unknown_rarity(question: str, vocabulary: Collection[str]) -> float:
    """How rare in English the rarest word of `question` is that the collection never mentions (0 to 1).

    Args:
        question: The cleaned question.
        vocabulary: The collection's keyword terms (stemmed, as `index.terms.tokenize` makes them).
    """
    rarest = 0.0
    for word in _WORD.findall(question.lower()):
        if word in _CONTRACTIONS:
            continue
        terms = tokenize(word)
        if not terms or terms[0] in vocabulary or _misspells(terms[0], vocabulary):
            continue
        rarest = max(rarest, rarity(word))
    return rarest


def rarity(word: str) -> float:
    """0 for the commonest English words, 1 for a word the frequency list does not hold."""
    counts, total = _english()
    return min(math.log10(total / (counts.get(word, 0) + 1)), _RARITY_CAP) / _RARITY_CAP


def _misspells(term: str, vocabulary: Collection[str]) -> bool:
    """Whether `term` is within one edit (two for long words) of a term of the collection."""
    limit = 1 if len(term) < 7 else 2
    by_start = _by_start(vocabulary)
    letters = _letter_counts([term])[0]
    for length in range(len(term) - limit, len(term) + limit + 1):
        bucket = by_start.get((term[0], length))
        if bucket is None:
            continue
        terms, counts = bucket
        # Letters one has and the other lacks bound the edit distance from below (each edit
        # changes at most one of each count), so only candidates within it are aligned.
        difference = counts - letters
        near = np.flatnonzero(
            np.maximum(np.clip(difference, 0, None).sum(1), np.clip(-difference, 0, None).sum(1)) <= limit
        )
        if any(_within(term, terms[i], limit) for i in near):
            return True
    return False


def _letter_counts(terms: list[str]) -> np.ndarray:
    """How often each character (by its code modulo 64) occurs in each term: one row per term."""
    counts = np.zeros((len(terms), 64), dtype=np.int16)
    codes = np.frombuffer("".join(terms).encode("utf-32-le"), dtype=np.uint32) % 64
    rows = np.repeat(np.arange(len(terms)), [len(term) for term in terms])
    np.add.at(counts, (rows, codes), 1)
    return counts


def _by_start(vocabulary: Collection[str]) -> dict[tuple[str, int], tuple[list[str], np.ndarray]]:
    """The vocabulary by first letter and length, with letter counts (cached per vocabulary object)."""
    key = id(vocabulary)
    cached = _BUCKETS.get(key)
    if cached is None or cached[0] is not vocabulary:
        grouped: dict[tuple[str, int], list[str]] = {}
        for term in vocabulary:
            if term:
                grouped.setdefault((term[0], len(term)), []).append(term)
        buckets = {start: (terms, _letter_counts(terms)) for start, terms in grouped.items()}
        cached = _BUCKETS[key] = (vocabulary, buckets)
        while len(_BUCKETS) > 8:  # a process serves one or two versions at a time
            del _BUCKETS[next(iter(_BUCKETS))]
    return cached[1]


_BUCKETS: dict[int, tuple[Collection[str], dict[tuple[str, int], tuple[list[str], np.ndarray]]]] = {}


def _within(a: str, b: str, limit: int) -> bool:
    """Optimal string alignment distance of `a` and `b` is at most `limit` (transpositions count once)."""
    if abs(len(a) - len(b)) > limit:
        return False
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return False
        previous2, previous = previous, current
    return previous[-1] <= limit


@cache
def _english() -> tuple[dict[str, int], int]:
    """English word counts (symspellpy's frequency dictionary) and their total."""
    import importlib.resources

    counts: dict[str, int] = {}
    path = importlib.resources.files("symspellpy") / "frequency_dictionary_en_82_765.txt"
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            word, _, count = line.partition(" ")
            counts[word] = int(count)
    return counts, sum(counts.values())
