"""Words as the keyword index counts them: lowercase, English stopwords removed, Snowball-stemmed (PyStemmer).

Shared by BM25 (`index.retrievers.keyword`) and the fake embedder
(`index.embed.fake`), which hashes the same terms into its vectors.
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS

_WORD = re.compile(r"\w+")
_STOPWORDS = frozenset(STOPWORDS_EN_PLUS)  # includes question words (what, how, why)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Lowercase, drop stopwords, stem."""
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]
    return _stemmer().stemWords(words)
