"""The corpus's documents as people manage them: what is there, whether it answers yet, and how to open or delete one.

Everything here takes a `source`, a document's path relative to the corpus
as citations show it, and refuses any source that is not one of the
corpus's own documents: an absolute path, `..`, a hidden file, a question
set, or a link that resolves outside the corpus folder all raise
`DocumentNotFound`. So a request from the browser can read or delete
exactly the files a build would read, and nothing else.

The status of a document compares the folder with the live index:
indexed (the index holds its current text), skipped (the build could not
read it; the reason is the build's), pending (added or changed since the
index was built), or removed (deleted, its passages still answering until
the next build).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from index.records import Choice
from index.store.reader import StoredIndex
from ingest.loaders import Document, corpus_root, discover, read_file
from ingest.pipeline import changed_sources


class Status(Choice):
    """Where a document stands with the live index."""

    INDEXED = "indexed"
    PENDING = "pending"
    SKIPPED = "skipped"
    REMOVED = "removed"

    @property
    def label(self) -> str:
        return {
            "indexed": "indexed",
            "pending": "pending rebuild",
            "skipped": "skipped",
            "removed": "deleted, pending rebuild",
        }[self.value]


@dataclass(frozen=True)
class DocumentEntry:
    """One document file of the corpus, as the Documents page lists it.

    Attributes:
        source: Path relative to the corpus, with `/` separators.
        kind: Its type, the suffix without the dot ("txt", "pdf").
        size: Bytes on disk (None when it is gone or unreadable).
        modified: When it was last written (seconds since the epoch; None when gone).
        passages: How many passages the live index holds from it.
        status: Indexed, pending rebuild, skipped or removed.
        reason: Why it was skipped, or which of its records were.
    """

    source: str
    kind: str
    size: int | None
    modified: float | None
    passages: int
    status: Status
    reason: str = ""


class DocumentNotFound(LookupError):
    """The source is not a document of this corpus (or no longer is)."""


class DocumentUnreadable(ValueError):
    """The document is there but cannot be turned into text; the message is the loader's reason."""


def list_documents(corpus: Path, stored: StoredIndex | None) -> list[DocumentEntry]:
    """Every document file of the corpus, and every one the live index still holds, with its status.

    Args:
        corpus: The corpus folder.
        stored: The live index, or None when there is none yet.

    Returns:
        Entries sorted by source.
    """
    rejected: list = []
    paths = discover(corpus, rejected=rejected) if corpus.exists() else []
    root = corpus_root(corpus)
    present = {path.relative_to(root).as_posix(): path for path in paths}
    changed = set(changed_sources(corpus, stored)) if stored is not None and corpus.exists() else set(present)
    passages: Counter[str] = Counter()
    file_skips: dict[str, str] = {}
    record_skips: defaultdict[str, list[str]] = defaultdict(list)
    if stored is not None:
        for doc in stored.documents:
            passages[doc.source] += doc.passages
        for skipped in stored.manifest.skipped:
            if skipped.source in present or skipped.source in stored.sources:
                file_skips[skipped.source] = skipped.reason
            else:  # "file.jsonl:12" or "file.jsonl:record-id": one record of a file
                record_skips[skipped.source.rsplit(":", 1)[0]].append(skipped.reason)
    entries = []
    for source, path in present.items():
        try:
            info = path.stat()
            size, modified = info.st_size, info.st_mtime
        except OSError:
            size = modified = None
        if source in changed:
            status, reason = Status.PENDING, ""
        elif source in file_skips:
            status, reason = Status.SKIPPED, file_skips[source]
        else:
            status, reason = Status.INDEXED, _records_note(record_skips.get(source, []))
        entries.append(DocumentEntry(source, _kind(source), size, modified, passages[source], status, reason))
    for source in sorted(changed - set(present)):
        entries.append(DocumentEntry(source, _kind(source), None, None, passages[source], Status.REMOVED))
    for skipped in rejected:  # names that are not UTF-8, pipes, devices: never read
        entries.append(
            DocumentEntry(skipped.source, _kind(skipped.source), None, None, 0, Status.SKIPPED, skipped.reason)
        )
    return sorted(entries, key=lambda entry: entry.source)


def _records_note(reasons: list[str]) -> str:
    if not reasons:
        return ""
    counted = Counter(reasons).most_common(3)
    parts = "; ".join(f"{reason} ({count})" if count > 1 else reason for reason, count in counted)
    return f"{len(reasons)} record{'s' if len(reasons) != 1 else ''} skipped: {parts}"


def _kind(source: str) -> str:
    return Path(source).suffix.lstrip(".").lower()


def document_path(corpus: Path, source: str) -> Path:
    """The file of the corpus document `source`, after checking that it is one.

    Raises:
        DocumentNotFound: `source` names no document of this corpus, or one
            whose real location is outside the corpus folder.
    """
    root = corpus_root(corpus)
    relative = Path(source)
    if not source or relative.is_absolute() or ".." in relative.parts or "\x00" in source:
        raise DocumentNotFound(f"{source!r} is not a document of this collection")
    path = root / relative
    try:
        inside = path.resolve(strict=True).is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # gone, or a link loop
        inside = False
    if not inside or path not in set(discover(corpus)):
        raise DocumentNotFound(f"{source!r} is not a document of this collection")
    return path


def delete_document(corpus: Path, source: str) -> None:
    """Remove the document `source` from the corpus folder; its passages go at the next build.

    Raises:
        DocumentNotFound: `source` is not a document of this corpus.
    """
    path = document_path(corpus, source)
    try:
        os.unlink(path)  # a link is removed itself, never what it points to
    except FileNotFoundError:
        raise DocumentNotFound(f"{source!r} is no longer there") from None


def read_document(corpus: Path, source: str, doc_id: str | None = None) -> Document:
    """The extracted text of one document, as the build reads it (offsets of citations index into it).

    Args:
        corpus: The corpus folder.
        source: The document's path relative to the corpus.
        doc_id: For a collection file (`.jsonl`), the record; None for the file's own document.

    Raises:
        DocumentNotFound: No such document (or record) in this corpus.
        DocumentUnreadable: The file cannot be read as text; the message says why.
    """
    path = document_path(corpus, source)
    items = read_file(path, corpus_root(corpus))
    wanted = doc_id or source
    for item in items:
        if isinstance(item, Document) and item.doc_id == wanted:
            return item
    problems = [item.reason for item in items if not isinstance(item, Document) and item.source == source]
    if problems:
        raise DocumentUnreadable(problems[0])
    raise DocumentNotFound(f"{source!r} holds no document {wanted!r}")
