"""Saving uploaded files into the corpus safely.

An upload's name comes from a stranger's browser. It is reduced to a plain
file name (no folders, no `..`, no absolute paths, no NUL or control
characters, no reserved device names, no leading dot), its type must be one
the loaders read, its size is capped, the uploads together stay within a
quota, and it is written into the corpus's `uploads/` folder through a
temporary file, so nothing outside the corpus is touched and a reader never
sees half a file. The quota is checked and the file written under one
lock, so uploads arriving together cannot each see room for themselves
(one process serves all browser sessions). Saved files are readable by others (0644), like the rest
of the corpus.

A document of the same name that is already in the corpus is never
overwritten silently: an identical file is recognised and not stored again,
a different one raises `NameTaken`, and only `replace=True` (the person said
"replace") swaps its content, in place and atomically.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from index.records import Choice
from index.store.version import file_sha256
from ingest.loaders import SUPPORTED_SUFFIXES, discover, is_outside, is_question_set

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
# All uploads of one corpus together; the app lets KB_UPLOAD_QUOTA_MB change it.
DEFAULT_UPLOAD_QUOTA_BYTES = 1024 * 1024 * 1024
UPLOAD_FOLDER = "uploads"
FILE_MODE = 0o644
# Windows device names, which Windows also sees in "CON.txt", "com1.tar.txt" and "COM¹.md".
_RESERVED = {"con", "prn", "aux", "nul", *(f"{port}{n}" for port in ("com", "lpt") for n in "0123456789¹²³")}
# File systems cap a name at 255 bytes; leave room for the type.
_MAX_STEM_BYTES = 200
_UNSAFE = re.compile(r"[^\w.\- ()]+")
# Held from checking the quota until the file is in place: uploads at once must not share the room left.
_QUOTA_LOCK = threading.Lock()


class UploadRejected(ValueError):
    """The upload cannot be stored; the message says why and what is allowed."""


class NameTaken(UploadRejected):
    """A different document of this name is already in the corpus; replacing it needs `replace=True`.

    Attributes:
        existing: The document's path relative to the corpus.
    """

    def __init__(self, filename: str, existing: str) -> None:
        super().__init__(f"a different document named {filename!r} is already there ({existing}); replace it?")
        self.existing = existing


class Outcome(Choice):
    """What saving an upload did."""

    ADDED = "added"
    REPLACED = "replaced"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Saved:
    """An upload in the corpus: where it is (relative to the corpus) and what saving it did."""

    source: str
    outcome: Outcome


def safe_name(filename: str) -> str:
    """A harmless file name derived from an uploaded one.

    Raises:
        UploadRejected: Nothing usable is left, or the type is not supported.
    """
    name = unicodedata.normalize("NFC", filename).replace("\x00", "")
    name = re.split(r"[\\/]", name)[-1]  # drop any folder part, either separator
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name).strip(" .")
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        raise UploadRejected(f"{filename!r} has no usable name and type; allowed types: {_allowed()}")
    suffix = "." + suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UploadRejected(f"{filename!r}: type {suffix} is not supported; allowed types: {_allowed()}")
    if stem.lower().split(".")[0].strip() in _RESERVED or is_question_set(stem + suffix):
        stem = "_" + stem  # a device name, or a name the corpus keeps for question sets (never indexed)
    return _truncate_utf8(stem, _MAX_STEM_BYTES).rstrip(" .") + suffix


def _truncate_utf8(text: str, limit: int) -> str:
    """The longest prefix of `text` whose UTF-8 encoding fits in `limit` bytes (never half a character)."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def existing_document(corpus: Path, name: str) -> Path | None:
    """The document in the corpus that an upload called `name` (already made safe) would be.

    The one in `uploads/` when there is one, else the first other document
    with that file name, so re-uploading "report.pdf" means that report
    wherever it sits. None when no document has the name.
    """
    uploaded = corpus / UPLOAD_FOLDER / name
    if uploaded.is_file() and not uploaded.is_symlink():
        return uploaded
    return next((path for path in discover(corpus) if path.name == name and not path.is_symlink()), None)


def uploads_size(corpus: Path) -> int:
    """Bytes taken by the files in the corpus's uploads folder."""
    folder = corpus / UPLOAD_FOLDER
    if not folder.is_dir():
        return 0
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            continue
    return total


def save_upload(
    corpus: Path,
    filename: str,
    data: bytes,
    *,
    replace: bool = False,
    quota: int = DEFAULT_UPLOAD_QUOTA_BYTES,
) -> Saved:
    """Store an uploaded file in the corpus: new names under `uploads/`, replacements where the document is.

    Args:
        corpus: The corpus folder.
        filename: The name the browser sent.
        data: The file's bytes.
        replace: Replace a different document of the same name (the person confirmed it).
        quota: Bytes all uploads of this corpus may take together.

    Returns:
        The stored document and whether it was added, replaced or already there unchanged.

    Raises:
        NameTaken: A different document of this name exists and `replace` is False.
        UploadRejected: Too large, empty, over the quota, or of an unsupported type.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadRejected(f"{filename!r} is {len(data) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB")
    if not data:
        raise UploadRejected(f"{filename!r} is empty")
    name = safe_name(filename)
    if is_outside(corpus / UPLOAD_FOLDER, corpus):
        raise UploadRejected(f"{filename!r} was not stored: the {UPLOAD_FOLDER} folder is a link outside the corpus")
    with _QUOTA_LOCK:
        return _save(corpus, filename, name, data, replace, quota)


def _save(corpus: Path, filename: str, name: str, data: bytes, replace: bool, quota: int) -> Saved:
    """`save_upload` past the checks of the name and size; the caller holds `_QUOTA_LOCK`."""
    root = corpus.resolve()
    folder = corpus / UPLOAD_FOLDER
    for _ in range(2):  # a second look when another upload of this name wins the race
        existing = existing_document(corpus, name)  # never a link: reading it could confirm a file outside
        if existing is not None:
            source = existing.resolve().relative_to(root).as_posix()
            if file_sha256(existing) == hashlib.sha256(data).hexdigest():
                return Saved(source, Outcome.UNCHANGED)
            if not replace:
                raise NameTaken(name, source)
            _check_quota(corpus, filename, len(data) - _uploaded_size(existing, corpus), quota)
            _write_replacing(existing, data)
            return Saved(source, Outcome.REPLACED)
        _check_quota(corpus, filename, len(data), quota)
        folder.mkdir(parents=True, exist_ok=True)
        if is_outside(folder, corpus):  # made a link while we looked
            raise UploadRejected(
                f"{filename!r} was not stored: the {UPLOAD_FOLDER} folder is a link outside the corpus"
            )
        try:
            _write_exclusive(folder / name, data)
        except FileExistsError:
            continue
        return Saved(f"{UPLOAD_FOLDER}/{name}", Outcome.ADDED)
    raise UploadRejected(f"{filename!r} cannot be stored: something that is not a document is in the way")


def _uploaded_size(path: Path, corpus: Path) -> int:
    """The size `path` counts against the quota (only files in the uploads folder count)."""
    inside = path.resolve().is_relative_to((corpus / UPLOAD_FOLDER).resolve())
    return path.stat().st_size if inside else 0


def _check_quota(corpus: Path, filename: str, growth: int, quota: int) -> None:
    used = uploads_size(corpus)
    if growth > 0 and used + growth > quota:
        raise UploadRejected(
            f"{filename!r} does not fit: uploads already take {used / 2**20:.1f} MB of the "
            f"{quota / 2**20:.0f} MB allowed; delete documents first, or raise KB_UPLOAD_QUOTA_MB"
        )


def _temporary(folder: Path, data: bytes) -> str:
    """A fully written, flushed temporary file in `folder` holding `data` (mode 0644); its path."""
    # A temporary of our own (unique, created exclusively, no symlink followed):
    # two uploads of the same name at once must not write into one file.
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            os.fchmod(out.fileno(), FILE_MODE)  # mkstemp makes 0600; the corpus is readable
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(temporary)
        raise
    return temporary


def _write_exclusive(path: Path, data: bytes) -> None:
    """Create `path` (never replacing anything), fully written or not at all."""
    temporary = _temporary(path.parent, data)
    try:
        os.link(temporary, path)  # fails if path exists, unlike rename
    finally:
        os.unlink(temporary)


def _write_replacing(path: Path, data: bytes) -> None:
    """Replace the file at `path` (a link is replaced itself, never written through)."""
    temporary = _temporary(path.parent, data)
    try:
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _allowed() -> str:
    return ", ".join(sorted(SUPPORTED_SUFFIXES))
