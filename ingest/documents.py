"""The corpus's documents as people manage them: what is there, whether it answers yet, and how to open or delete one.

Everything here takes a `source`, a document's path relative to the corpus
as citations show it, and refuses any source that is not one of the
corpus's own documents: an absolute path, `..`, a hidden file, a question
set, or a link that resolves outside the corpus folder all raise
`DocumentNotFound`. So a request from the browser can read or delete
exactly the files a build would read, and nothing else.

A page shows a document's text from the live index (`indexed_text`), the
text its citations' offsets index, and never parses the file again. The
original file is read at request time only to download it, and only by
`read_original`: opened without following any link below the corpus folder,
then checked on the open file to be a regular file of the size and
modification time the index recorded. A file swapped for a link (to
`/etc/passwd`), a pipe or other bytes after the page was shown is refused,
never served. A hard link is the file itself and cannot be told apart: what
may be published is decided by who may write the corpus folder (README).

The status of a document compares the folder with the live index:
indexed (the index holds its current text), skipped (the build could not
read it; the reason is the build's), pending (added or changed since the
index was built), or removed (deleted, its passages still answering until
the next build).
"""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from index.records import Choice, DocumentInfo
from index.store.reader import StoredIndex
from index.store.version import SourceFile
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


class DocumentChanged(LookupError):
    """The file is no longer the one the index recorded (its size or time differ): rebuild first."""


class DocumentTooLarge(ValueError):
    """The file is larger than a download from the browser may be (`MAX_DOWNLOAD_BYTES`)."""


# What one click on Download may read into memory (uploads are at most 50 MB).
MAX_DOWNLOAD_BYTES = 100 * 2**20


@dataclass(frozen=True)
class IndexedText:
    """One document as the live index holds it.

    Attributes:
        info: What the index recorded of the document.
        text: Its extracted text, which its passages' offsets index.
        recorded: Its file's size, time and hash when the index was built (None when not recorded).
    """

    info: DocumentInfo
    text: str
    recorded: SourceFile | None


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


def indexed_text(stored: StoredIndex, source: str, doc_id: str | None = None) -> IndexedText:
    """One document's text from the live index, without reading its file.

    Args:
        stored: The live index.
        source: The document's path relative to the corpus.
        doc_id: For a collection file (`.jsonl`), the record; None for the file's own document.

    Raises:
        DocumentNotFound: The index holds no such document.
        DocumentUnreadable: The build skipped it; the message is the build's reason.
    """
    wanted = doc_id or source
    if stored.texts is not None:
        for row, info in enumerate(stored.documents):
            if info.source == source and info.doc_id == wanted:
                return IndexedText(info, stored.texts.text(row), stored.sources.get(source))
    for skipped in stored.manifest.skipped:  # the file, or this record of it ("file.jsonl:record-id")
        if skipped.source in (source, f"{source}:{wanted}"):
            raise DocumentUnreadable(skipped.reason)
    raise DocumentNotFound(f"{source!r} holds no document {wanted!r} in the index")


def read_original(corpus: Path, source: str, recorded: SourceFile | None) -> bytes:
    """The bytes of the corpus file `source`, only if it is still the file the index recorded.

    The one way a request reads a source file (Download). No link is followed
    below the corpus folder: each folder on the way and the file itself are
    opened relative to the one before with `O_NOFOLLOW`, so the file is inside
    the corpus by construction, even if a folder is swapped for a link
    meanwhile. The open file must then be a regular file of the recorded size
    and modification time.

    Args:
        corpus: The corpus folder (or one file).
        source: The document's path relative to the corpus.
        recorded: The index's fingerprint of the file (`StoredIndex.sources`); None: not indexed.

    Raises:
        DocumentNotFound: Not a file the index recorded, gone, a link, or not a regular file.
        DocumentChanged: Its size or time differ from the record (edited since the build).
        DocumentTooLarge: Over `MAX_DOWNLOAD_BYTES`.
    """
    parts = _source_parts(source)
    if recorded is None:
        raise DocumentNotFound(f"{source!r} is not a document of this collection")
    handle = _open_below(corpus_root(corpus), parts, source)
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise DocumentNotFound(f"{source} is not a regular file any more")
        if (info.st_size, info.st_mtime_ns) != (recorded.size, recorded.mtime_ns):
            raise DocumentChanged(f"{source} changed since the index was built; rebuild, then download it")
        if info.st_size > MAX_DOWNLOAD_BYTES:
            raise DocumentTooLarge(
                f"{source} is too large to download here ({info.st_size / 2**20:,.0f} MB; "
                f"the limit is {MAX_DOWNLOAD_BYTES // 2**20} MB)"
            )
        data = _read_exactly(handle, info.st_size)
    finally:
        os.close(handle)
    if len(data) != recorded.size:
        raise DocumentChanged(f"{source} changed while it was read; try again")
    return data


def _source_parts(source: str) -> list[str]:
    """The path components of a document's source, refusing anything that is not a plain relative path."""
    parts = source.split("/")
    if (
        not source
        or "\x00" in source
        or os.path.isabs(source)
        or any(part in ("", ".", "..") or part.startswith(".") for part in parts)
    ):
        raise DocumentNotFound(f"{source!r} is not a document of this collection")
    return parts


def _open_below(root: Path, parts: list[str], source: str) -> int:
    """Open `root/parts...` for reading, following no link below `root`; the file descriptor."""
    try:
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DocumentNotFound(f"{source} is no longer there (the corpus folder is gone)") from None
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
            os.close(folder)
            folder = inner
        # O_NONBLOCK: a pipe put in the file's place must not hang the request (fstat then refuses it).
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    except FileNotFoundError:
        raise DocumentNotFound(f"{source} is no longer there") from None
    except OSError as exc:  # ELOOP: the file is a link; ENOTDIR: a folder on the way is one
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise DocumentNotFound(f"{source} is a link, or lies behind one; only plain files are downloaded") from None
        raise
    finally:
        os.close(folder)


def _read_exactly(handle: int, size: int) -> bytes:
    """Up to `size` bytes from the start of the open file (fewer if it shrank meanwhile)."""
    chunks, done = [], 0
    while done < size:
        chunk = os.pread(handle, min(size - done, 2**20), done)
        if not chunk:
            break
        chunks.append(chunk)
        done += len(chunk)
    return b"".join(chunks)
