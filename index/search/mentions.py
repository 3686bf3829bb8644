"""Every mention of a phrase: each place it occurs in the collection, grouped by document, each one a citation.

Not top-k: the listing is exhaustive. The keyword index narrows the search to
the documents that can hold the phrase (every word of it is among their
passages' terms), and an exact scan of those documents' stored texts (the same
text citations index) finds and confirms each place. Matching ignores case and
accents and takes whole words only:

- `hip flexors` (no quotes): every word must appear within one passage, and
  each occurrence of each word there is a mention; one word alone is found
  everywhere it occurs;
- `"hip flexors"` (quotes): the exact phrase, its words separated by any
  whitespace (a line break included), found everywhere it occurs;
- quoted phrases and single words mix: `"hip flexors" stretch`.

A document is a candidate when each of the phrase's keyword terms (stemmed,
stopwords left out, as BM25 counts them) is in a passage located in it; a
phrase of stopwords only ("to be or not to be") has no terms, and every
document is scanned. A near-duplicate copy of a passage is located in its
document but not kept as text of its own (`ingest.dedup`): it is a candidate
when the passage kept for it holds the words.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from index.records import DocumentInfo
from index.search.filters import Where, fold, select
from index.store.passages import DOCUMENT, ROW, name_key
from index.store.reader import StoredIndex
from index.terms import tokenize

_QUOTED = re.compile(r'"([^"]*)"|“([^”]*)”|(\S+)')


@dataclass(frozen=True)
class Mention:
    """One place a phrase occurs: `document_text[start:end] == text`, on `line` (and `page`, for PDFs)."""

    start: int
    end: int
    line: int
    page: int | None
    text: str

    def to_json(self) -> dict:
        return {"start": self.start, "end": self.end, "line": self.line, "page": self.page, "text": self.text}


@dataclass(frozen=True)
class DocumentMentions:
    """Every mention in one document, in document order."""

    source: str
    doc_id: str
    mentions: tuple[Mention, ...]

    @property
    def count(self) -> int:
        return len(self.mentions)

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "doc_id": self.doc_id,
            "count": self.count,
            "mentions": [m.to_json() for m in self.mentions],
        }


@dataclass(frozen=True)
class Mentions:
    """A phrase's mentions in the collection, by document (most mentions first, then by source)."""

    phrase: str
    documents: tuple[DocumentMentions, ...]

    @property
    def total(self) -> int:
        return sum(d.count for d in self.documents)

    def to_json(self) -> dict:
        """What `python -m index mentions --json` prints and GET /mentions returns."""
        return {"phrase": self.phrase, "total": self.total, "documents": [d.to_json() for d in self.documents]}


@dataclass(frozen=True)
class Phrase:
    """What to look for: units (a quoted phrase or one word, each folded into its words), all within one passage."""

    text: str
    units: tuple[tuple[str, ...], ...]

    @classmethod
    def parse(cls, text: str) -> Phrase:
        """Quoted parts are exact phrases, every other word a unit of its own.

        Raises:
            ValueError: Nothing is left to look for (empty, or only quotes and spaces).
        """
        units = []
        for quoted, curly, word in _QUOTED.findall(text):
            words = tuple(fold(quoted or curly or word).split())
            if words and words not in units:
                units.append(words)
        if not units:
            raise ValueError('the phrase is empty; give a word or a phrase in quotes, such as "hip flexors"')
        return cls(" ".join(text.split()), tuple(units))

    @cached_property
    def patterns(self) -> tuple[re.Pattern, ...]:
        """Each unit as a regular expression over folded text: whole words, any whitespace between them."""
        return tuple(
            re.compile(r"(?<!\w)" + r"\s+".join(re.escape(w) for w in unit) + r"(?!\w)") for unit in self.units
        )

    @property
    def terms(self) -> list[str]:
        """The keyword terms every matching passage holds (stemmed, stopwords left out)."""
        return list(dict.fromkeys(term for unit in self.units for term in tokenize(" ".join(unit))))


class MentionFinder:
    """Finds every mention of a phrase in one loaded index (what it derives from the index is kept)."""

    def __init__(self, stored: StoredIndex) -> None:
        self.stored = stored

    def find(self, phrase: str | Phrase, where: Where | None = None, sources: frozenset[str] | None = None) -> Mentions:
        """Every mention of `phrase`, in the documents `where` admits (all without it), of `sources` when given.

        Raises:
            ValueError: The phrase is empty.
            FilterError: `where` filters by title or tag and the index does not keep them.
        """
        phrase = phrase if isinstance(phrase, Phrase) else Phrase.parse(phrase)
        candidates = self.candidates(phrase)
        if where or sources is not None:
            allowed = select(self.stored, where or Where(), sources).documents
            candidates = allowed if candidates is None else sorted(set(candidates) & set(allowed))
        elif candidates is None:
            candidates = range(len(self.stored.documents))
        found = []
        for row in candidates:
            doc = self.stored.documents[row]
            mentions = tuple(self._scan(doc, self.stored.texts.text(row), phrase))
            if mentions:
                found.append(DocumentMentions(doc.source, doc.doc_id, mentions))
        found.sort(key=lambda d: (-d.count, d.source, d.doc_id))
        return Mentions(phrase.text, tuple(found))

    def candidates(self, phrase: Phrase) -> list[int] | None:
        """Rows of the documents holding every term of the phrase in their passages (None: no terms, scan all)."""
        terms = phrase.terms
        if not terms:
            return None
        keys = None
        for term in terms:
            rows = self._rows_with(term)
            found = np.unique(self._document_keys_of(rows))
            keys = found if keys is None else np.intersect1d(keys, found, assume_unique=True)
            if not len(keys):
                return []
        rows_of = self._document_rows
        return sorted(row for key in keys.tolist() for row in rows_of.get(key, ()))

    def _rows_with(self, term: str) -> np.ndarray:
        """Passage rows whose keyword terms hold `term`, or a term that differs from it in accents only."""
        scores = self.stored.keyword._retriever.scores
        indptr, indices = scores["indptr"], scores["indices"]
        ids = self._term_ids.get(fold(term), ())
        parts = [np.asarray(indices[indptr[i] : indptr[i + 1]]) for i in ids]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    @cached_property
    def _term_ids(self) -> dict[str, list[int]]:
        """Each keyword term, folded, and the ids of the terms that fold to it."""
        ids: dict[str, list[int]] = {}
        for term, i in self.stored.keyword.vocabulary.items():
            ids.setdefault(fold(term), []).append(int(i))
        return ids

    def _document_keys_of(self, rows: np.ndarray) -> np.ndarray:
        """The document keys (`name_key` of source and id) of every location of these passage rows."""
        table = self.stored.locations._table
        return np.asarray(table[:, DOCUMENT])[np.isin(np.asarray(table[:, ROW]), rows)]

    @cached_property
    def _document_rows(self) -> dict[int, list[int]]:
        rows: dict[int, list[int]] = {}
        for row, doc in enumerate(self.stored.documents):
            rows.setdefault(name_key(f"{doc.source}\0{doc.doc_id}"), []).append(row)
        return rows

    def _scan(self, doc: DocumentInfo, text: str, phrase: Phrase) -> Iterator[Mention]:
        """The mentions in one document's text, found on its folded text and cited in the original."""
        folded, starts, ends = folded_text(text)
        spans = [[(starts[m.start()], ends[m.end() - 1]) for m in p.finditer(folded)] for p in phrase.patterns]
        if len(spans) > 1:
            spans = self._within_passages(doc, spans)
        lines = _LineCounter(text)
        for start, end in sorted(set(span for unit in spans for span in unit)):
            yield Mention(start, end, lines.line(start), doc.page_at(start), text[start:end])

    def _within_passages(self, doc: DocumentInfo, spans: list[list[tuple[int, int]]]) -> list[list[tuple[int, int]]]:
        """Only the spans in passages where every unit occurs (a passage runs up to where the next one starts)."""
        starts = np.asarray(self.stored.locations.document(doc.source, doc.doc_id)[0]).tolist() or [0]

        def passage(span: tuple[int, int]) -> int:
            return bisect.bisect_right(starts, span[0])

        complete = set.intersection(*({passage(s) for s in unit} for unit in spans))
        return [[s for s in unit if passage(s) in complete] for unit in spans]


def folded_text(text: str) -> tuple[str, Sequence[int], Sequence[int]]:
    """`text` folded (lowercase, accents off), with where each folded character begins and ends in `text`.

    Folding can change a character into several ("ß" into "ss") or none (a
    combining accent), so every folded character keeps the span of the
    original character it came from.
    """
    if text.isascii():
        return text.lower(), range(len(text)), range(1, len(text) + 1)
    table = {c: _fold_char(c) for c in set(_NON_ASCII.findall(text))}
    if all(len(piece) == 1 for piece in table.values()):  # one for one (most text): offsets stay
        folded = _NON_ASCII.sub(lambda m: table[m.group()], text).lower()
        if len(folded) == len(text):
            return folded, range(len(text)), range(1, len(text) + 1)
    pieces, starts, ends = [], [], []
    for i, char in enumerate(text):
        piece = table.get(char, char.lower())
        pieces.append(piece)
        starts.extend([i] * len(piece))
        ends.extend([i + 1] * len(piece))
    return "".join(pieces), starts, ends


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _fold_char(char: str) -> str:
    decomposed = unicodedata.normalize("NFKD", char.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class _LineCounter:
    """1-based line numbers of offsets asked in increasing order (counted once through the text)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.lines = 1

    def line(self, offset: int) -> int:
        if offset < self.at:
            self.at, self.lines = 0, 1
        self.lines += self.text.count("\n", self.at, offset)
        self.at = offset
        return self.lines
