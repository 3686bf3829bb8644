"""What each published version changed, kept beside the version folders so "updated 2 minutes ago: 1 added" can be said.

A build compares the files the live version read with the files it read
(`diff_sources`) and appends the result to `changes.jsonl` in the index
folder, outside every version folder, so removing old versions never
touches it. A file whose name is gone and whose content reappears under a
new name is one rename, not a removal and an addition. The log keeps the
last `KEEP` entries.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from index.store.version import SourceFile

CHANGES = "changes.jsonl"
KEEP = 200


@dataclass(frozen=True)
class IndexChange:
    """The files one build added, changed, removed and renamed, by path relative to the corpus.

    Attributes:
        version: The version folder it published ("" before it is known).
        at: When, ISO 8601 in UTC.
        renamed: (old name, new name) pairs: same content, new path.
    """

    version: str = ""
    at: str = ""
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed or self.renamed)

    def summary(self) -> str:
        """ "1 added, 1 removed" ("no file changed" when nothing did)."""
        parts = [
            f"{len(names)} {word}"
            for names, word in (
                (self.added, "added"),
                (self.changed, "changed"),
                (self.removed, "removed"),
                (self.renamed, "renamed"),
            )
            if names
        ]
        return ", ".join(parts) or "no file changed"

    def to_json(self) -> dict:
        return {
            "version": self.version,
            "at": self.at,
            "added": list(self.added),
            "changed": list(self.changed),
            "removed": list(self.removed),
            "renamed": [list(pair) for pair in self.renamed],
        }

    @classmethod
    def from_json(cls, data: dict) -> IndexChange:
        return cls(
            str(data.get("version", "")),
            str(data.get("at", "")),
            tuple(data.get("added", ())),
            tuple(data.get("changed", ())),
            tuple(data.get("removed", ())),
            tuple((str(old), str(new)) for old, new in data.get("renamed", ())),
        )

    def when(self) -> datetime | None:
        try:
            return datetime.fromisoformat(self.at)
        except ValueError:
            return None


def diff_sources(before: dict[str, SourceFile], after: dict[str, SourceFile]) -> IndexChange:
    """The files added, changed, removed and renamed between two versions' fingerprints.

    A removed file whose content hash is an added file's is a rename (each
    removed file pairs with at most one added file, in name order).
    """
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(name for name in set(before) & set(after) if before[name].sha256 != after[name].sha256)
    renamed = []
    for old in list(removed):
        sha = before[old].sha256
        new = next((name for name in added if sha and after[name].sha256 == sha), None)
        if new is not None:
            renamed.append((old, new))
            removed.remove(old)
            added.remove(new)
    return IndexChange(added=tuple(added), changed=tuple(changed), removed=tuple(removed), renamed=tuple(renamed))


def record_change(index_dir: Path, change: IndexChange, version: str) -> IndexChange:
    """Append `change` (as published in `version`, now) to the index folder's log; returns it as recorded."""
    stamped = replace(change, version=version, at=datetime.now(UTC).isoformat(timespec="seconds"))
    path = index_dir / CHANGES
    with open(path, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            lines = [line for line in handle.read().splitlines() if line.strip()]
            lines = [*lines[-(KEEP - 1) :], json.dumps(stamped.to_json(), ensure_ascii=False)]
            handle.seek(0)
            handle.truncate()
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return stamped


def last_change(index_dir: Path, version: str | None = None) -> IndexChange | None:
    """The newest change recorded (for `version`, when given), or None; a damaged log is no log."""
    try:
        lines = (index_dir / CHANGES).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for line in reversed(lines):
        try:
            change = IndexChange.from_json(json.loads(line))
        except (ValueError, TypeError, AttributeError):
            continue
        if version is None or change.version == version:
            return change
    return None
