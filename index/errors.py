"""Why an index cannot be used, as types: callers branch on the class, never on the message.

Every error carries `fix`, the command or action that resolves it, and its
message is "what is wrong; how to fix it", so the command line and the app
can show it as one line.
"""

from __future__ import annotations

from pathlib import Path


class StoreError(Exception):
    """An index cannot be read or written.

    Attributes:
        problem: What is wrong, naming the folder or file.
        fix: What to do about it (a command when there is one).
    """

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}; {fix}")
        self.problem = problem
        self.fix = fix


class IndexNotFound(StoreError):
    """Nothing has been published in the index folder yet."""


class IndexDamaged(StoreError):
    """A file of the live version is missing, unreadable, edited, or of another format version."""


class PointerDamaged(IndexDamaged):
    """CURRENT cannot be read, is empty, or names something other than a version folder of the index."""


class IndexBusy(StoreError):
    """Another process is publishing into the same index folder."""


class IndexWriteFailed(StoreError):
    """A new version could not be written (a full disk, no permission); the live version is untouched."""


class ModelMismatch(StoreError):
    """The index was built with another model than the one that would embed the questions."""


def rebuild_fix(index_dir: Path) -> str:
    """The fix for an index that has to be built again."""
    return f"rebuild it with: python -m ingest --index {index_dir}"


def build_fix(index_dir: Path) -> str:
    """The fix for an index that was never built."""
    return f"build one with: python -m ingest --index {index_dir}"
