"""Did you mean: a question with its misspelt words corrected from the collection's own vocabulary (symspellpy).

A word of the question is taken as misspelt when it is not a word of the
collection, its keyword term (its stem) is not one either, and it is not a
common English word (symspellpy's frequency dictionary, which also knows the
question words a small collection may lack); and it is long enough to judge
(three letters or more, letters only: codes and numbers are left alone).
SymSpell then finds the closest words of the collection's vocabulary, within
one edit for words of up to four letters and two for longer ones (a
transposition is one edit). Among equally close ones, a word that keeps the
first letter wins (people seldom mistype it: "hwo" is "how", not "who"), then
the most frequent, in the collection and in English together; a word with
another first letter (other than the first two swapped) is another word, not
a typo ("xray" is not "ray").

The SymSpell dictionary is built from the vocabulary stored with the version
(`index.store.vocabulary`), the most frequent `MAX_WORDS` words, the first
time a question has an unknown word, so questions without typos never pay for
it (bench/RESULTS.md, "Did you mean").
"""

from __future__ import annotations

import importlib.resources
import re
import threading
from collections.abc import Container, Mapping
from functools import cached_property

from symspellpy import SymSpell, Verbosity

from index.terms import tokenize

_WORD = re.compile(r"(?<![\w'’])[^\W\d_]+(?![\w'’])")  # letters only, not part of a code such as "B12x"
MIN_LETTERS = 3
# Edits allowed by a word's length: one for short words (two edits make "cat" anything), two above.
SHORT_WORD = 4
# Words of the collection SymSpell holds: its build time grows with them (about 0.7 s for SciFact's 30,000).
MAX_WORDS = 200_000
ENGLISH = "frequency_dictionary_en_82_765.txt"


class Speller:
    """Suggests a corrected question from a collection's vocabulary.

    Args:
        vocabulary: Each word of the collection (lowercase) and how often it occurs.
        terms: The keyword index's terms (stemmed): a word whose stem is one is known.
    """

    def __init__(self, vocabulary: Mapping[str, int], terms: Container[str] = frozenset()) -> None:
        self.vocabulary = vocabulary
        self.terms = terms
        self._building = threading.Lock()

    @cached_property
    def _symspell(self) -> SymSpell:
        # A prefix of 5 builds three times faster than symspellpy's default of 7 and finds the same words.
        symspell = SymSpell(max_dictionary_edit_distance=2, prefix_length=5)
        for taken, (word, count) in enumerate(self.vocabulary.items()):
            if taken == MAX_WORDS:
                break
            if len(word) >= 2:
                symspell.create_dictionary_entry(word, count)
        return symspell

    @cached_property
    def english(self) -> dict[str, int]:
        """Common English words and their counts in a large corpus (shipped with symspellpy)."""
        counts = {}
        with (importlib.resources.files("symspellpy") / ENGLISH).open(encoding="utf-8") as lines:
            for line in lines:
                word, _, count = line.partition(" ")
                counts[word] = int(count)
        return counts

    @cached_property
    def _contractions(self) -> frozenset[str]:
        """The collection's words with an apostrophe, written without it ("shouldnt", "thats")."""
        return frozenset(re.sub("['’]", "", word) for word in self.vocabulary if "'" in word or "’" in word)

    @cached_property
    def _totals(self) -> tuple[int, int]:
        return max(1, sum(self.vocabulary.values())), max(1, sum(self.english.values()))

    @property
    def symspell(self) -> SymSpell:
        """The SymSpell dictionary, built on first use (once, whichever thread asks first)."""
        with self._building:
            return self._symspell

    def known(self, word: str) -> bool:
        """Whether `word` (any case) is a word of the collection, or one the keyword index counts as one."""
        lower = word.lower()
        if lower in self.vocabulary or lower in self.english or lower in self._contractions:
            return True
        terms = tokenize(lower)
        return not terms or terms[0] in self.terms  # no terms: a stopword, a word of every language

    def correct(self, word: str) -> str | None:
        """The closest word of the collection to an unknown `word`, with its capitalisation; None when none is close."""
        lower = word.lower()
        distance = 1 if len(lower) <= SHORT_WORD else 2
        found = self.symspell.lookup(lower, Verbosity.CLOSEST, max_edit_distance=distance)
        if not found or found[0].term == lower:
            return None
        collection, english = self._totals

        def likely(term: str) -> tuple[bool, float]:
            frequency = self.vocabulary.get(term, 0) / collection + self.english.get(term, 0) / english
            return term[0] == lower[0], frequency

        best = max((item.term for item in found), key=likely)
        if best[0] != lower[0] and best[:2] != lower[1::-1]:
            return None  # another first letter (not two first letters swapped): another word, not a typo of this one
        if word.isupper() and len(word) > 1:
            return best.upper()
        return best[:1].upper() + best[1:] if word[:1].isupper() else best

    def suggest(self, question: str) -> str | None:
        """`question` with each misspelt word corrected, or None when no word needs it (or none can be).

        Only the words change: spacing, punctuation and the other words stay as typed.
        """
        if not self.vocabulary:
            return None
        changed = False
        parts, at = [], 0
        for match in _WORD.finditer(question):
            word = match.group()
            if len(word) < MIN_LETTERS or self.known(word):
                continue
            better = self.correct(word)
            if better is None:
                continue
            parts += [question[at : match.start()], better]
            at = match.end()
            changed = True
        return "".join([*parts, question[at:]]) if changed else None
