"""When the index last changed, in words: "Updated 2 minutes ago: 1 added, 1 removed."

Read from the change log a build leaves in the index folder
(`index.store.changes`), else from the live version's manifest; pure
functions of the times, so the wording is tested without a browser.
"""

from __future__ import annotations

from datetime import UTC, datetime

from index.counting import plural
from index.store.changes import IndexChange, last_change
from index.store.reader import StoredIndex


def ago(then: datetime, now: datetime) -> str:
    """ "just now", "2 minutes ago", "3 hours ago", "5 days ago"."""
    seconds = max((now - then).total_seconds(), 0.0)
    if seconds < 60:
        return "just now"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            return f"{plural(int(seconds // size), unit)} ago"
    return "just now"


def updated_line(change: IndexChange | None, built_at: str, now: datetime | None = None) -> str:
    """ "Updated 2 minutes ago: 1 added, 1 removed." (without the list when it is unknown or empty)."""
    now = now or datetime.now(UTC)
    when = change.when() if change is not None else None
    if when is None:
        try:
            when = datetime.fromisoformat(built_at)
        except ValueError:
            return ""
    what = f": {change.summary()}" if change is not None and not change.empty else ""
    return f"Updated {ago(when, now)}{what}."


def index_updated(stored: StoredIndex, now: datetime | None = None) -> str:
    """`updated_line` for a loaded index version."""
    return updated_line(last_change(stored.path.parent, stored.path.name), stored.manifest.built_at, now)
