"""Filters people search with: by type, folder, file date, tag and title, applied before anything is ranked.

A filter is a set of `key=value` conditions (`--where type=pdf --where
folder=leaflets --where after=2026-01-01` on the command line, the same
fields in the API, the app's sidebar). Conditions on different keys must all
hold; several values of one key are alternatives (`type=pdf` and `type=docx`
is either; of several dates the strictest counts). A filter turns into the documents that satisfy it and then into
the passage rows found in them (`Selection`), which the retrievers are
restricted to, so the k hits of a filtered search are the best k inside it,
and a listing of mentions looks only there.

- `type`: the file's type by its suffix (pdf, html, md, docx, txt, jsonl);
- `folder`: the file lies in this folder of the corpus, or below it (`leaflets`, `guides/2026`);
- `after` / `before`: the file's modification time at build, `after=D` from the start of day D
  (UTC) on, `before=D` up to the start of day D;
- `tag`: one of the document's own tags (front matter, HTML meta, DOCX keywords), ignoring case;
- `title`: words of the document's own title, ignoring case and accents.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import PurePosixPath

import numpy as np

from index.errors import rebuild_fix
from index.records import Choice, DocumentInfo
from index.store.reader import StoredIndex


class FilterKey(Choice):
    """What a filter condition is about."""

    TYPE = "type"
    FOLDER = "folder"
    AFTER = "after"
    BEFORE = "before"
    TAG = "tag"
    TITLE = "title"

    @classmethod
    def what(cls) -> str:
        return "filter"


# The types a document can have, by its file's suffix (the readers' SUPPORTED_SUFFIXES).
TYPES = {
    ".pdf": "pdf",
    ".html": "html",
    ".htm": "html",
    ".md": "md",
    ".markdown": "md",
    ".docx": "docx",
    ".txt": "txt",
    ".jsonl": "jsonl",
}
TYPE_NAMES = tuple(dict.fromkeys(TYPES.values()))


class FilterError(ValueError):
    """A filter that makes no sense; the message names the allowed keys or values."""


def document_type(source: str) -> str:
    """A document's type by its file's suffix ("txt" for a file of no known type)."""
    return TYPES.get(PurePosixPath(source).suffix.lower(), "txt")


def fold(text: str) -> str:
    """`text` lowercased with its accents taken off, for comparisons that ignore both."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass(frozen=True)
class Where:
    """A filter: each key's allowed values (empty: that key does not filter).

    Build one with `parse` (`key=value` strings) or `from_fields` (the API's
    and the app's fields); `to_strings` gives the `key=value` strings back.
    """

    types: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()
    after: date | None = None
    before: date | None = None
    tags: tuple[str, ...] = ()
    titles: tuple[str, ...] = ()

    @classmethod
    def parse(cls, conditions: Iterable[str]) -> Where:
        """A filter from `key=value` strings.

        Raises:
            FilterError: A string is not `key=value`, names no known key, or holds a bad value.
        """
        fields: dict[FilterKey, list[str]] = {}
        for condition in conditions:
            key, equals, value = condition.partition("=")
            if not equals:
                raise FilterError(
                    f"filter {condition!r} is not key=value; use {_keys()}, e.g. type=pdf or after=2026-01-01"
                )
            fields.setdefault(_key(key.strip()), []).append(value.strip())
        return cls.from_fields({key.value: values for key, values in fields.items()})

    @classmethod
    def from_fields(cls, fields: Mapping[str, str | Sequence[str] | None]) -> Where:
        """A filter from each key's value or values (None or empty: not filtered by it).

        Raises:
            FilterError: A key is unknown, or a value is bad (the message says which and why).
        """
        values: dict[FilterKey, list[str]] = {}
        for name, given in fields.items():
            key = _key(name)
            if given is None:
                continue
            items = [given] if isinstance(given, str) else list(given)
            values[key] = [item.strip() for item in items if item.strip()] + values.get(key, [])
        types = []
        for value in values.get(FilterKey.TYPE, []):
            name = value.lower().lstrip(".")
            name = TYPES.get(f".{name}", name)
            if name not in TYPE_NAMES:
                raise FilterError(f"type must be one of {', '.join(TYPE_NAMES)}, got {value!r}")
            types.append(name)
        folders = [_folder(value) for value in values.get(FilterKey.FOLDER, [])]
        return cls(
            types=tuple(dict.fromkeys(types)),
            folders=tuple(dict.fromkeys(folders)),
            after=_one_date(FilterKey.AFTER, values.get(FilterKey.AFTER, []), max),
            before=_one_date(FilterKey.BEFORE, values.get(FilterKey.BEFORE, []), min),
            tags=tuple(dict.fromkeys(values.get(FilterKey.TAG, []))),
            titles=tuple(dict.fromkeys(values.get(FilterKey.TITLE, []))),
        )

    def __bool__(self) -> bool:
        return any((self.types, self.folders, self.after, self.before, self.tags, self.titles))

    def to_strings(self) -> list[str]:
        """The filter as `key=value` strings (`parse` reads them back to an equal filter)."""
        out = [f"type={t}" for t in self.types] + [f"folder={f}" for f in self.folders]
        out += [f"after={self.after.isoformat()}"] if self.after else []
        out += [f"before={self.before.isoformat()}"] if self.before else []
        return out + [f"tag={t}" for t in self.tags] + [f"title={t}" for t in self.titles]

    def to_json(self) -> dict:
        """Each key that filters, with its values (dates as YYYY-MM-DD)."""
        data: dict = {}
        for text in self.to_strings():
            key, _, value = text.partition("=")
            data.setdefault(key, []).append(value)
        return data

    @property
    def needs_metadata(self) -> bool:
        """Whether it filters by what a document says of itself (its title or tags)."""
        return bool(self.tags or self.titles)

    def admits(self, document: DocumentInfo, mtime_ns: int | None) -> bool:
        """Whether `document`, whose file was modified at `mtime_ns` (None: unknown), passes."""
        if self.types and document_type(document.source) not in self.types:
            return False
        if self.folders and not any(document.source.startswith(folder + "/") for folder in self.folders):
            return False
        if self.after is not None or self.before is not None:
            if mtime_ns is None:
                return False
            day = datetime.fromtimestamp(mtime_ns / 1e9, UTC)
            if self.after is not None and day < _start_of(self.after):
                return False
            if self.before is not None and day >= _start_of(self.before):
                return False
        if self.tags:
            wanted = {fold(t) for t in self.tags}
            if not wanted & {fold(t) for t in document.tags}:
                return False
        if self.titles:
            title = f" {' '.join(fold(document.title).split())} "
            if not any(f" {' '.join(fold(t).split())} " in title for t in self.titles):
                return False
        return True


@dataclass(frozen=True)
class Selection:
    """What a filter leaves of an index: its documents (rows of `documents`), their files, their passages.

    Attributes:
        documents: Rows of the index's `documents` that pass, ascending.
        sources: The files they come from (citations are taken from these).
        rows: Sorted passage rows with a location in one of them (what retrievers are restricted to).
    """

    documents: tuple[int, ...]
    sources: frozenset[str]
    rows: np.ndarray


def select(stored: StoredIndex, where: Where, sources: frozenset[str] | None = None) -> Selection:
    """The documents of `stored` that `where` admits (within `sources`, when given), and their passage rows.

    Raises:
        FilterError: The filter is by title or tag and the index was built before titles and tags were kept.
    """
    if where.needs_metadata and not stored.described:
        raise FilterError(
            f"index {stored.path.parent} was built before documents' titles and tags were kept, so it cannot be "
            f"filtered by them; {rebuild_fix(stored.path.parent)}"
        )
    files = stored.sources
    documents = stored.documents
    chosen = [
        row
        for row, doc in enumerate(documents)
        if (sources is None or doc.source in sources)
        and where.admits(doc, files[doc.source].mtime_ns if doc.source in files else None)
    ]
    per_source: dict[str, int] = {}
    for doc in documents:
        per_source[doc.source] = per_source.get(doc.source, 0) + 1
    taken: dict[str, list[int]] = {}
    for row in chosen:
        taken.setdefault(documents[row].source, []).append(row)
    whole = sorted(source for source, rows in taken.items() if len(rows) == per_source[source])
    parts = [stored.locations.rows_of_sources(whole)]
    for source, rows in taken.items():
        if len(rows) != per_source[source]:  # some records of a file: by document
            parts += [stored.locations.document(source, documents[row].doc_id)[1] for row in rows]
    rows = np.unique(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
    return Selection(tuple(chosen), frozenset(taken), rows)


def _keys() -> str:
    names = [key.value for key in FilterKey]
    return ", ".join(names[:-1]) + f" or {names[-1]}"


def _key(name: str) -> FilterKey:
    try:
        return FilterKey(name.lower())
    except ValueError:
        raise FilterError(f"unknown filter {name!r}; filters are {_keys()} (as key=value)") from None


def _folder(value: str) -> str:
    folder = value.replace("\\", "/").strip("/")
    if not folder or any(part in ("", ".", "..") for part in folder.split("/")):
        raise FilterError(f"folder must be a folder of the corpus, such as leaflets or guides/2026, got {value!r}")
    return folder


def _one_date(key: FilterKey, values: list[str], pick) -> date | None:
    days = []
    for value in values:
        try:
            days.append(date.fromisoformat(value))
        except ValueError:
            raise FilterError(f"{key.value} must be a date as YYYY-MM-DD, such as 2026-01-01, got {value!r}") from None
    return pick(days) if days else None


def _start_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
