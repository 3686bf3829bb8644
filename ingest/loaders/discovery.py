"""Which files of a corpus folder are documents, and the path safety that keeps every read inside it."""

from __future__ import annotations

import fnmatch
import os
import stat
from pathlib import Path

from index.records import Skipped
from ingest.loaders.text import SURROGATE

SUPPORTED_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".jsonl"})
# Evaluation question sets (questions.jsonl, questions-everyday.jsonl, ...) may sit
# beside the documents; they are not documents.
QUESTION_SETS = "questions*.jsonl"


def is_question_set(name: str) -> bool:
    """Whether a file of this name is a question set rather than a document."""
    return fnmatch.fnmatchcase(name.lower(), QUESTION_SETS)


def corpus_root(corpus: Path) -> Path:
    """The folder that sources are relative to: the corpus itself, or a single file's folder."""
    return corpus.parent if corpus.is_file() else corpus


def discover(corpus: Path, rejected: list[Skipped] | None = None) -> list[Path]:
    """Supported files under `corpus`, sub-folders included, sorted by relative path.

    `corpus` may also be one file (for example a BEIR `corpus.jsonl` that sits
    beside its queries). Hidden files and folders and question sets (`QUESTION_SETS`) are left
    out; symbolic links to folders are not followed, so a link loop cannot
    trap the walk. Links to files outside the corpus folder (`/etc/passwd`;
    nothing outside the corpus is ever read), pipes and devices (a read may
    block forever, or never end) and paths whose names are not valid UTF-8
    (old archives unpacked on Linux; they cannot be cited or stored) are left
    out too and, when `rejected` is given, appended to it with the reason.
    """
    if corpus.is_file():  # named by the operator: read wherever it lies
        return [] if _bad_name(corpus.name, rejected) else [corpus]
    found, left_out = [], []
    for folder, subfolders, files in os.walk(corpus, followlinks=False):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        for name in files:
            path = Path(folder) / name
            if name.startswith(".") or is_question_set(name) or path.suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            relative = path.relative_to(corpus).as_posix()
            if _bad_name(relative, left_out) or _leaves_corpus(path, corpus, relative, left_out):
                continue
            if not _special_file(path, relative, left_out):
                found.append(path)
    if rejected is not None:
        rejected.extend(sorted(left_out, key=lambda item: item.source))
    return sorted(found, key=lambda p: p.relative_to(corpus).as_posix())


LINK_OUT = "link points outside the corpus"


def is_outside(path: Path, folder: Path) -> bool:
    """Whether `path`, its links followed, lies outside `folder`.

    A broken link or a link loop counts as inside: reading it fails, and the loader says so.
    """
    try:
        return not path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
        return False


def _leaves_corpus(path: Path, corpus: Path, relative: str, rejected: list[Skipped] | None) -> bool:
    """Whether `path` is a link out of the corpus (recording it in `rejected`)."""
    if not is_outside(path, corpus):
        return False
    if rejected is not None:
        rejected.append(Skipped(relative, LINK_OUT))
    return True


def _special_file(path: Path, relative: str, rejected: list[Skipped] | None) -> bool:
    """Whether `path` (or what its link points at) is a FIFO, socket or device: reading one can block forever."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False  # broken link or link loop: the loader reports it
    if stat.S_ISREG(mode):
        return False
    if rejected is not None:
        rejected.append(Skipped(relative, "not a regular file (a pipe, socket or device); only files are read"))
    return True


def _bad_name(relative: str, rejected: list[Skipped] | None) -> bool:
    """Whether `relative` holds bytes that are not UTF-8 (recording it in `rejected`)."""
    if not SURROGATE.search(relative):
        return False
    if rejected is not None:
        printable = relative.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        rejected.append(Skipped(printable, "file name is not valid UTF-8; rename the file"))
    return True
