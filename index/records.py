"""The typed records that flow through the knowledge base.

Everything that crosses a module boundary is one of these frozen dataclasses:
a passage and the places it was found, a search hit with its answering
sentence, the result of one question, the build settings, and the manifest
that describes a stored index. They serialise to plain JSON so the on-disk
format stays readable.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import NamedTuple, Self

# 2: answer-candidate vectors pooled from each passage's own forward pass, stored for every passage.
# 3: passages read by row from disk (line offsets, a location table), each file's size and time in the
#    manifest (checked on load instead of hashing), duplicate signatures and keyword terms kept for updates.
# 4: every document's extracted text (texts.bin, for citations over the HTTP API), and optional serving shards.
# 5: passages carry their heading path (Location.section), answer candidates keep a passage's last
#    words and dotted initials ("I.V."), and the manifest records each reader's version.
FORMAT_VERSION = 5


class Choice(StrEnum):
    """One of a fixed set of named options (a retrieval mode, a fusion, a build stage).

    A member equals its value, so it prints and serialises as plain text;
    `from_str` parses a value and names the valid ones when it is not one;
    `label` is what a person reads for it, the same on the command line and
    in the app.
    """

    @classmethod
    def what(cls) -> str:
        """What the option is called in messages ("mode", "fusion", "stage")."""
        return cls.__name__.lower()

    @classmethod
    def from_str(cls, text: str) -> Self:
        """The member whose value is `text`.

        Raises:
            ValueError: `text` is no member's value; the message lists the values.
        """
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"{cls.what()} must be one of {', '.join(cls)}, got {text!r}") from None

    @property
    def label(self) -> str:
        return self.value


@dataclass(frozen=True)
class Settings:
    """Every knob that changes what an index contains; copied into the manifest.

    Attributes:
        max_tokens: Word pieces allowed per passage, special tokens included.
            all-MiniLM-L6-v2 reads 256; staying below leaves room for the
            tokenizer disagreeing with our count and guarantees no truncation.
        min_tokens: Paragraphs shorter than this are merged with the next one
            (headings, list stubs) so a passage carries enough context.
        max_chars: Characters allowed per passage, whatever the token count:
            a tokenizer counts a run of letters (or any word over 100
            characters) as one unknown token, so megabytes of "aaa..." fit
            `max_tokens`. Prose passages stay far below it (bench/RESULTS.md,
            "Passage length cap"). None: no cap
            (an index built before the cap existed reads back so, and is
            re-chunked on the next build).
        near_duplicate_threshold: Estimated Jaccard similarity of word
            shingles above which two passages count as the same text.
        exact_search_limit: Passages up to which dense search is exact
            (FAISS IndexFlatIP). Above it the index is approximate (IVF with
            8-bit scalar quantization, re-scored exactly), because exact
            search over N vectors costs O(N) per question and 4 bytes per
            dimension of memory (bench/RESULTS.md, "Exact search limit").
    """

    max_tokens: int = 250
    min_tokens: int = 24
    near_duplicate_threshold: float = 0.85
    exact_search_limit: int = 200_000
    max_chars: int | None = 4000

    def __post_init__(self) -> None:
        if not 16 <= self.max_tokens <= 256:
            raise ValueError(f"max_tokens must be between 16 and 256, got {self.max_tokens}")
        if not 0 <= self.min_tokens < self.max_tokens:
            raise ValueError(f"min_tokens must be in [0, max_tokens), got {self.min_tokens}")
        if not 0.5 <= self.near_duplicate_threshold <= 1.0:
            raise ValueError(f"near_duplicate_threshold must be in [0.5, 1.0], got {self.near_duplicate_threshold}")
        if self.exact_search_limit < 1000:
            raise ValueError(f"exact_search_limit must be at least 1000, got {self.exact_search_limit}")
        if self.max_chars is not None and self.max_chars < 100:
            raise ValueError(f"max_chars must be at least 100 (or None for no cap), got {self.max_chars}")


@dataclass(frozen=True)
class Location:
    """One place a passage's text occurs: `document_text[start:end]`.

    `line` (1-based, in the extracted text) and `page` (1-based, PDFs only)
    are for human citations; `start`/`end` are the exact provenance.
    `section` is the heading path the place sits under ("Zika virus › Symptoms"),
    for documents whose reader knows their headings ("" otherwise).
    """

    doc_id: str
    source: str
    start: int
    end: int
    line: int
    page: int | None = None
    section: str = ""

    def cite(self) -> str:
        where = f"page {self.page}" if self.page is not None else f"line {self.line}"
        label = self.source if self.doc_id == self.source else f"{self.source} [{self.doc_id}]"
        return f"{label}, {where}"


def indexed_text(text: str, section: str) -> str:
    """What the model and BM25 read for a passage: its heading path, then its text.

    The heading is context, not part of the passage: offsets, highlights and
    quotes index `text` alone, and a passage without a section reads as before.
    """
    return f"{section}\n{text}" if section else text


@dataclass(frozen=True)
class Passage:
    """A unit of retrieval. Its id is a hash of what it is indexed as (`indexed_text`), so it is stable across runs.

    `locations[0]` is the canonical place; near-duplicate copies elsewhere are
    kept as further locations, so a question never sees the same text twice.
    """

    id: str
    text: str
    locations: tuple[Location, ...]

    @property
    def location(self) -> Location:
        return self.locations[0]

    @property
    def section(self) -> str:
        """The heading path of its canonical place ("" for text without headings)."""
        return self.location.section

    @property
    def indexed_text(self) -> str:
        """Its text after its heading path: what the model embeds and BM25 counts."""
        return indexed_text(self.text, self.location.section)

    def cited_in(self, sources: frozenset[str] | None) -> Passage:
        """This passage cited from `sources`: its first location there comes first (unchanged without a filter).

        A search limited to some documents must not cite a copy of the text in another one.
        """
        if sources is None or self.location.source in sources:
            return self
        first = next((loc for loc in self.locations if loc.source in sources), None)
        if first is None:
            return self
        return Passage(self.id, self.text, (first, *(loc for loc in self.locations if loc is not first)))

    def also_cited(self) -> str:
        """The further places this text occurs, as "source, line n; ..." ("" when it occurs once)."""
        return "; ".join(loc.cite() for loc in self.locations[1:])

    def to_json(self) -> dict:
        # vars(), not asdict(): the same flat dict, without asdict's deep copy (a third of writing a version)
        return {"id": self.id, "text": self.text, "locations": [_location_json(loc) for loc in self.locations]}

    @classmethod
    def from_json(cls, data: dict) -> Passage:
        return cls(data["id"], data["text"], tuple(Location(**loc) for loc in data["locations"]))


def _location_json(location: Location) -> dict:
    """A location as stored: without `section` when it has none, so text without headings is stored as before."""
    data = dict(vars(location))
    if not data["section"]:
        del data["section"]
    return data


def text_id(text: str) -> str:
    """Content hash used as passage id and embedding cache key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


@dataclass(frozen=True)
class Span:
    """A character span in a document, with the text it covers."""

    start: int
    end: int
    text: str


class ScoreParts(NamedTuple):
    """The pieces a hit's score was made of, so a wrong order can be diagnosed.

    A named tuple, not a dataclass: fusion makes one for every candidate of
    every question (about 200), and a frozen dataclass took 1 µs each.

    Attributes:
        passage_cosine: Cosine similarity of the question and the whole passage.
        sentence_cosine: Cosine similarity of the question and the passage's best answer candidate.
        dense: The dense retriever's score (what `passage_cosine` and `sentence_cosine` combine to).
        keyword: The BM25 score (0 when the passage shares no term with the question).
        dense_weight: The weight the dense score got in this question's fusion (1 or 0 with one retriever).
        fused: The score the hits are ranked by.
    """

    passage_cosine: float
    sentence_cosine: float
    dense: float
    keyword: float
    dense_weight: float
    fused: float

    def to_json(self) -> dict:
        return {name: round(value, 6) for name, value in self._asdict().items()}


class Verdict(Choice):
    """How sure the knowledge base is that its best passage answers the question."""

    ANSWERED = "answered"
    UNSURE = "unsure"
    NOT_ANSWERED = "not_answered"

    @property
    def label(self) -> str:
        return _VERDICT_LABELS[self]


_VERDICT_LABELS = {
    Verdict.ANSWERED: "Answer",
    Verdict.UNSURE: "Closest passages; these may not answer",
    Verdict.NOT_ANSWERED: "No passage in the collection answers this.",
}


@dataclass(frozen=True)
class Hit:
    """One ranked passage for a question.

    Attributes:
        rank: 1-based position in the fused ranking.
        score: Fused relevance score (higher is better, comparable within one query).
        similarity: Cosine similarity of question and passage (comparable across queries).
        answer: The passage's best answering sentence, as a span of the
            canonical location's document.
        dense_rank / keyword_rank: 1-based ranks in each retriever, None when
            the passage was not in that retriever's candidate list.
        confidence: The probability that this passage answers the question
            (calibrated on several collections, see `index.search.confidence`).
        parts: What the score was made of (for `--explain` and "Why this order?").
    """

    passage: Passage
    rank: int
    score: float
    similarity: float
    answer: Span
    dense_rank: int | None = None
    keyword_rank: int | None = None
    confidence: float = 0.0
    parts: ScoreParts | None = None

    def answer_within(self, start: int) -> tuple[int, int]:
        """The answer's span relative to text that begins at document offset `start`.

        The passage's own text begins at `passage.location.start`; a
        neighbouring passage shown for context has its own start.
        """
        return self.answer.start - start, self.answer.end - start

    def to_json(self, explain: bool = False) -> dict:
        """The hit as `python -m index query --json` prints it; `explain` adds its ranks and score parts."""
        loc = self.passage.location
        data = {
            "rank": self.rank,
            "score": round(self.score, 6),
            "doc_id": loc.doc_id,
            "source": loc.source,
            "start": loc.start,
            "end": loc.end,
            "text": self.passage.text,
            "section": loc.section,
            "answer": {"start": self.answer.start, "end": self.answer.end, "text": self.answer.text},
            "confidence": round(self.confidence, 4),
        }
        if explain:
            data["explain"] = {
                "dense_rank": self.dense_rank,
                "keyword_rank": self.keyword_rank,
                "similarity": round(self.similarity, 6),
                **(self.parts.to_json() if self.parts else {}),
            }
        return data


@dataclass(frozen=True)
class Answer:
    """The response to one question: ranked hits and how sure we are that they answer it.

    Attributes:
        query: The question as searched (cleaned).
        verdict: Answered (the best hit very likely answers), unsure (the
            closest passages are shown, but may not answer) or not answered.
        hits: Ranked passages, best first.
        suggestion: The question with its misspelt words corrected from the
            collection's vocabulary ("did you mean"), or None when no word looks misspelt.
        corrected: Whether the verdict and hits are the suggestion's: the
            question as typed found nothing confident and the suggestion did better.
    """

    query: str
    verdict: Verdict
    hits: tuple[Hit, ...]
    suggestion: str | None = None
    corrected: bool = False

    @property
    def answered(self) -> bool:
        """Whether the best hit is taken to answer the question."""
        return self.verdict is Verdict.ANSWERED

    @property
    def confidence(self) -> float:
        """The best hit's confidence (0 without hits)."""
        return self.hits[0].confidence if self.hits else 0.0

    def to_json(self, explain: bool = False) -> dict:
        """The answer as `python -m index query --json` prints it (and POST /query returns it)."""
        return {
            "query": self.query,
            "answered": self.answered,
            "verdict": self.verdict.value,
            "confidence": round(self.confidence, 4),
            "hits": [h.to_json(explain) for h in self.hits],
            "suggestion": self.suggestion,
            "corrected": self.corrected,
        }


@dataclass(frozen=True)
class DocumentInfo:
    """What the index remembers about a source document (for staleness, updates, filters and citations).

    Attributes:
        notes: What a person should know about how it was read ("page 7 read by OCR").
        headings: Its headings' `(start, end, level)` in its text, for showing it as it is laid out.
        title: The document's own title (front matter, `<title>`, DOCX core properties, a record's title).
        tags: Its own tags or keywords (front matter, HTML meta, DOCX keywords).
        pages: PDFs only: `pages[i]` is the offset in its text where page i+1 begins.
    """

    doc_id: str
    source: str
    sha256: str
    chars: int
    passages: int
    notes: tuple[str, ...] = ()
    headings: tuple[tuple[int, int, int], ...] = ()
    title: str = ""
    tags: tuple[str, ...] = ()
    pages: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        # Read back from JSON these are lists; kept as tuples so the record stays hashable.
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "headings", tuple(tuple(h) for h in self.headings))
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "pages", tuple(self.pages))

    def page_at(self, offset: int) -> int | None:
        """1-based page holding `offset` of the document's text, or None for documents without pages."""
        return bisect.bisect_right(self.pages, offset) if self.pages else None


@dataclass(frozen=True)
class Skipped:
    """A file that could not be ingested, and why."""

    source: str
    reason: str


@dataclass(frozen=True)
class Manifest:
    """Describes one published index version; loading checks every field.

    `vector_index` is the FAISS factory string of vectors.faiss: "Flat"
    (exact) or "IVF<lists>,SQ8" (approximate, see `Settings.exact_search_limit`).
    `sentences` counts the stored answer-candidate vectors (every passage has at least one).
    `files` holds each file's SHA-256 (checked by `python -m index verify`),
    `file_stats` its size and modification time in nanoseconds (checked on
    every load), and `signatures` names the layout of the stored duplicate
    signatures ("" when there are none).
    `shards` is how many serving shards the version holds besides the whole
    index (`index.search.sharded`; 0: none). `readers` is the version of the
    reader each kind of file was read with ("pdf": 2), so a reader's fix
    reads that kind's files again.
    """

    format_version: int
    model: str
    dimensions: int
    documents: int
    passages: int
    locations: int
    settings: Settings
    built_at: str
    corpus: str
    files: dict[str, str] = field(default_factory=dict)
    file_stats: dict[str, tuple[int, int]] = field(default_factory=dict)
    skipped: tuple[Skipped, ...] = ()
    vector_index: str = "Flat"
    sentences: int = 0
    signatures: str = ""
    shards: int = 0
    readers: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        data = asdict(self)
        data["skipped"] = [asdict(s) for s in self.skipped]
        return data

    @classmethod
    def from_json(cls, data: dict) -> Manifest:
        data = dict(data)
        # A manifest written before max_chars existed: its passages were cut by tokens only.
        data["settings"] = Settings(**{"max_chars": None, **data["settings"]})
        data["skipped"] = tuple(Skipped(**s) for s in data.get("skipped", ()))
        data["file_stats"] = {
            name: (int(size), int(mtime)) for name, (size, mtime) in data.get("file_stats", {}).items()
        }
        return cls(**data)
