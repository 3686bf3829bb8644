"""Keyword retrieval: BM25 over the same passages as the vectors (bm25s).

Dense vectors miss rare exact terms (drug names, codes, numbers) that BM25
finds, and BM25 misses paraphrases that vectors find; search fuses both.
Row i of the BM25 index is row i of the vector index. Tokens are lowercase
words, English stopwords removed, Snowball-stemmed (PyStemmer), so that
"fractures" matches "fractured". Each passage's terms are kept beside the
index (`terms.txt`, line i = passage i), so an update tokenizes only the
passages it has not seen: BM25's weights depend on the whole collection and
are computed again, but from stored terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import bm25s
import numpy as np

from index.rowfile import open_rows
from index.terms import tokenize

TERMS = "terms.txt"
# bm25s's score matrix (CSC: a term's postings are data[indptr[t]:indptr[t + 1]], their rows indices[...]).
_MATRIX = ("data", "indices", "indptr")


def _interned(terms: list[str], shared: dict[str, str]) -> list[str]:
    """`terms` with each word one shared object: kept for a whole collection, a copy per use would
    cost about 60 bytes a word (tests/test_bad_files.py bounds a build's memory)."""
    return [shared.setdefault(term, term) for term in terms]


class KeywordIndex:
    """A BM25 index whose rows line up with the passages."""

    def __init__(self, retriever: bm25s.BM25, size: int, terms: list[list[str]] | None = None, folder=None) -> None:
        self._retriever = retriever
        self.size = size
        self._terms = terms
        self._folder = folder

    @classmethod
    def build(
        cls, texts: Sequence[str], reuse: tuple[KeywordIndex, Sequence[int | None]] | None = None
    ) -> KeywordIndex:
        """BM25 over `texts`.

        Args:
            texts: The passages' texts, row by row.
            reuse: A previous index and, for each text, its row there (None for a new text): the
                terms of a text it holds are taken from it instead of tokenizing the text again.
        """
        previous, rows = reuse if reuse is not None else (None, [None] * len(texts))
        shared: dict[str, str] = {}
        # An empty placeholder token keeps bm25s happy with passages that are all stopwords.
        terms = [
            previous.terms[row] if row is not None else _interned(tokenize(text) or [""], shared)
            for text, row in zip(texts, rows)
        ]
        retriever = bm25s.BM25()
        retriever.index(terms, show_progress=False)
        return cls(retriever, len(texts), terms)

    @cached_property
    def terms(self) -> list[list[str]]:
        """Each passage's terms, as indexed."""
        if self._terms is not None:
            return self._terms
        lines = (self._folder / TERMS).read_text(encoding="utf-8").split("\n")
        if len(lines) != self.size:
            raise ValueError(f"{TERMS} holds terms of {len(lines)} passages, the index has {self.size}")
        shared: dict[str, str] = {}
        return [_interned(line.split(" "), shared) if line else [""] for line in lines]

    def save(self, folder: Path) -> None:
        self._retriever.save(str(folder))
        (folder / TERMS).write_text("\n".join(" ".join(t) for t in self.terms), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, size: int) -> KeywordIndex:
        # At a million passages the score matrix is hundreds of MB: each question reads the postings of
        # its words from disk (`index.rowfile`); bm25s only slices them.
        retriever = bm25s.BM25.load(str(folder), mmap=True)
        for key in _MATRIX:
            retriever.scores[key] = open_rows(folder / f"{key}.csc.index.npy")
        return cls(retriever, size, folder=folder)

    @property
    def vocabulary(self) -> dict[str, int]:
        """Every term of the collection (the whole collection's, in a serving shard too)."""
        return self._retriever.vocab_dict

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage for `query` (zeros when no query term is indexed)."""
        tokens = [t for t in tokenize(query) if t in self._retriever.vocab_dict]
        if not tokens or self.size == 0:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._retriever.get_scores(tokens), dtype=np.float32)

    def search(self, query: str, depth: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The top `depth` rows by BM25 among those sharing a term with `query` (`top_positive`), and every row's score.

        Args:
            query: The question.
            depth: How many rows to propose at most.
            allowed: Passage rows to restrict to (the others score 0), or None for all.
        """
        scores = self.scores(query)
        if allowed is not None:
            mask = np.zeros(len(scores), dtype=bool)
            mask[allowed] = True
            scores = np.where(mask, scores, 0.0)
        return top_positive(scores, depth), scores

    def subset(self, rows: np.ndarray) -> KeywordIndex:
        """BM25 over these rows alone (row i = `rows[i]`, ascending), scored as within the whole collection.

        Each term's weight in each passage is kept as the whole collection
        computed it (its document frequency and average passage length), and
        so is the vocabulary, so a passage scores the same bits in the subset
        as in the whole: a shard's scores compare with every other shard's
        (`index.search.sharded`).
        """
        whole = self._retriever
        indptr, indices, data = (np.asarray(whole.scores[key]) for key in ("indptr", "indices", "data"))
        local = np.full(whole.scores["num_docs"], -1, dtype=np.int64)
        local[rows] = np.arange(len(rows))
        keep = local[indices] >= 0
        kept_before = np.concatenate([[0], np.cumsum(keep)])
        part = bm25s.BM25(
            k1=whole.k1,
            b=whole.b,
            delta=whole.delta,
            method=whole.method,
            idf_method=whole.idf_method,
            dtype=whole.dtype,
            int_dtype=whole.int_dtype,
        )
        part.scores = {
            "data": data[keep],
            "indices": local[indices[keep]].astype(indices.dtype),
            "indptr": kept_before[indptr].astype(indptr.dtype),
            "num_docs": len(rows),
        }
        part.vocab_dict = dict(whole.vocab_dict)
        part.unique_token_ids_set = set(part.vocab_dict.values())
        part.nonoccurrence_array = whole.nonoccurrence_array
        terms = self.terms
        return KeywordIndex(part, len(rows), [terms[row] for row in rows])


def top_rows(scores: np.ndarray, depth: int) -> np.ndarray:
    """The `depth` rows of highest score, best first; of rows tied at the cut, the lowest.

    The lowest rows among ties is also what dense search keeps (`DenseIndex.search`),
    so a shard's top rows merged with the others' are the top rows of the whole collection.
    """
    if depth <= 0:
        return np.zeros(0, dtype=np.int64)
    if depth < len(scores):
        cut = np.partition(scores, len(scores) - depth)[len(scores) - depth]
        above = np.flatnonzero(scores > cut)
        rows = np.concatenate([above, np.flatnonzero(scores == cut)[: depth - len(above)]])
    else:
        rows = np.arange(len(scores))
    return rows[np.lexsort((rows, -scores[rows]))]


def top_positive(scores: np.ndarray, depth: int) -> np.ndarray:
    """`top_rows` among the rows scoring above zero (BM25's: those sharing a term with the question).

    Selecting among the positive rows alone is also what keeps it fast: most of
    a collection scores exactly 0 for a question, and `np.partition` over that
    many ties took about 1 ms at 12,000 passages (0.03 ms this way).
    """
    positive = np.flatnonzero(scores > 0)
    return positive[top_rows(scores[positive], depth)]
