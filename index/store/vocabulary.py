"""The collection's own words and how often each occurs, for "did you mean" (`index.search.spelling`).

Written at publish from the passages' texts into `vocabulary.tsv` (one
`word<TAB>count` a line, most frequent first): the words as people type
them, lowercased, letters only (and apostrophes within), not stemmed as the keyword index keeps its
terms. Counting at publish costs one pass over the passages; building it
when an index loads would cost that pass on every start (bench/RESULTS.md,
"Did you mean").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

VOCABULARY = "vocabulary.tsv"
# Runs of letters, an apostrophe inside kept ("shouldn't", "that’s"): a question may drop it, never split there.
WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")


def words(text: str) -> list[str]:
    """The words of `text` as the vocabulary counts them: runs of letters (apostrophes within kept), lowercased."""
    return WORD.findall(text.lower())


def count_words(texts: Iterable[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(words(text))
    return counts


def write_vocabulary(folder: Path, texts: Iterable[str]) -> None:
    """Count the words of `texts` into `folder`'s vocabulary file."""
    counts = count_words(texts)
    lines = (f"{word}\t{count}\n" for word, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    with open(folder / VOCABULARY, "w", encoding="utf-8") as out:
        out.writelines(lines)


def read_vocabulary(text: str) -> dict[str, int]:
    """The words and counts of a vocabulary file's text.

    Raises:
        ValueError: A line is not `word<TAB>count`.
    """
    counts = {}
    for number, line in enumerate(text.splitlines(), start=1):
        word, tab, count = line.partition("\t")
        if not tab or not count.isdigit():
            raise ValueError(f"{VOCABULARY} line {number} is not word<TAB>count")
        counts[word] = int(count)
    return counts
