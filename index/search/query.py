"""A question as search sees it: control characters removed, whitespace collapsed, length capped."""

from __future__ import annotations

import re

# The model reads at most 256 word pieces, about 1,000 characters of English;
# twice that loses nothing it would read and keeps BM25 on a pasted book fast.
MAX_QUERY_CHARS = 2000


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A UTF-16 surrogate alone is not a character: JSON's "\\ud800" escape and bytes that are
# not UTF-8 on a command line (Python decodes them as U+DC80-U+DCFF) make one.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def not_text(query: str) -> str | None:
    """Why `query` cannot be searched as text (it holds a lone surrogate), or None when it can.

    Callers refuse such a question with this reason: it cannot be encoded, stored or shown.
    """
    found = _SURROGATE.search(query)
    if found is None:
        return None
    return (
        f"it holds U+{ord(found.group()):04X} at character {found.start() + 1}, a lone UTF-16 surrogate "
        "(invalid JSON escape or bytes that are not UTF-8), which is not a character; send valid Unicode text"
    )


def clean_query(query: str) -> str:
    """The text a question is searched with.

    Control characters become spaces, runs of whitespace one space, and a
    question longer than `MAX_QUERY_CHARS` is cut there (at the last space
    before it, when there is one).
    """
    return _clean(query)[0]


def query_is_cut(query: str) -> bool:
    """Whether `clean_query` cuts `query` short (not just its spacing), so callers can say so."""
    return _clean(query)[1]


def _clean(query: str) -> tuple[str, bool]:
    query = " ".join(_CONTROL.sub(" ", query).split())
    if len(query) <= MAX_QUERY_CHARS:
        return query, False
    cut = query[: MAX_QUERY_CHARS + 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut[:MAX_QUERY_CHARS]), True
