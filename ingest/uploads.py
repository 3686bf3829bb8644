"""Saving uploaded files into the corpus safely.

An upload's name comes from a stranger's browser. It is reduced to a plain
file name (no folders, no `..`, no absolute paths, no NUL or control
characters, no reserved device names, no leading dot), its type must be one
the loaders read, its size is capped, and it is written into the corpus's
`uploads/` folder with exclusive creation, so nothing outside the corpus is
touched and no existing file is ever overwritten: a different file with the
same name gets a numbered name, an identical one is recognised and not
stored twice.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from pathlib import Path

from ingest.loaders import SUPPORTED_SUFFIXES, is_outside

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
UPLOAD_FOLDER = "uploads"
# Windows device names, which Windows also sees in "CON.txt", "com1.tar.txt" and "COM¹.md".
_RESERVED = {"con", "prn", "aux", "nul", *(f"{port}{n}" for port in ("com", "lpt") for n in "0123456789¹²³")}
# File systems cap a name at 255 bytes; leave room for " (999)" and the type.
_MAX_STEM_BYTES = 200
_UNSAFE = re.compile(r"[^\w.\- ()]+")


class UploadRejected(ValueError):
    """The upload cannot be stored; the message says why and what is allowed."""


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
    if stem.lower().split(".")[0].strip() in _RESERVED:
        stem = "_" + stem
    return _truncate_utf8(stem, _MAX_STEM_BYTES).rstrip(" .") + suffix


def _truncate_utf8(text: str, limit: int) -> str:
    """The longest prefix of `text` whose UTF-8 encoding fits in `limit` bytes (never half a character)."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def save_upload(corpus: Path, filename: str, data: bytes) -> tuple[Path, bool]:
    """Store an uploaded file under `corpus/uploads/`.

    Args:
        corpus: The corpus folder.
        filename: The name the browser sent.
        data: The file's bytes.

    Returns:
        The stored path and whether it is new (False: an identical file was already there).

    Raises:
        UploadRejected: Too large, empty, or of an unsupported type.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadRejected(f"{filename!r} is {len(data) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB")
    if not data:
        raise UploadRejected(f"{filename!r} is empty")
    name = safe_name(filename)
    folder = corpus / UPLOAD_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    if is_outside(folder, corpus):
        raise UploadRejected(f"{filename!r} was not stored: the {UPLOAD_FOLDER} folder is a link outside the corpus")
    stem, suffix = name[: -len(Path(name).suffix)], Path(name).suffix
    digest = hashlib.sha256(data).digest()
    for number in range(1, 1000):
        candidate = folder / (name if number == 1 else f"{stem} ({number}){suffix}")
        if candidate.is_symlink():  # never read through a link: it may lead out of the corpus
            continue
        if candidate.exists():
            if candidate.is_file() and hashlib.sha256(candidate.read_bytes()).digest() == digest:
                return candidate, False
            continue
        try:
            _write_exclusive(candidate, data)
        except FileExistsError:  # lost a race with another upload: try the next name
            continue
        return candidate, True
    raise UploadRejected(f"too many files named {name!r} already")


def _write_exclusive(path: Path, data: bytes) -> None:
    """Create `path` (never replacing anything), fully written or not at all."""
    # A temporary of our own (unique, created exclusively, no symlink followed):
    # two uploads of the same name at once must not write into one file.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.link(temporary, path)  # fails if path exists, unlike rename
    finally:
        os.unlink(temporary)


def _allowed() -> str:
    return ", ".join(sorted(SUPPORTED_SUFFIXES))
