"""Errors as a visitor should read them: what is wrong and what to do, never a traceback or a server path.

The full exception goes to the server log (`log_error`); the browser gets
`plain_error`: a sentence per kind of problem, with any file-system path
reduced to its last part, and a fix in terms of the app (a button, or the
person who runs it) rather than a command on a machine the visitor cannot
reach.
"""

from __future__ import annotations

import logging
import re

from index.errors import IndexBusy, IndexDamaged, IndexNotFound, ModelMismatch, StoreError

log = logging.getLogger("kb.app")

# An absolute path (or one from the home folder): keep only its last part.
_PATH = re.compile(r"(?<![\w.])(?:[A-Za-z]:\\|~?/)(?:[^\s/\\'\"]+[/\\])*([^\s/\\'\"]*)")
# The CLI fix that index errors carry ("; rebuild it with: python -m ingest --index …").
_CLI_FIX = re.compile(r"[;,]?\s*(re)?build (it|one) with: python -m ingest.*$")


def redact(text: str) -> str:
    """`text` with every file-system path cut to its last part and any command-line fix dropped."""
    return _PATH.sub(lambda m: m.group(1) or "the folder", _CLI_FIX.sub("", text)).strip()


def log_error(what: str, exc: BaseException) -> None:
    """Record an error with its traceback in the server log."""
    log.error("%s: %s", what, exc, exc_info=exc)


def index_problem(exc: StoreError, can_rebuild: bool) -> tuple[str, str]:
    """(what is wrong, what to do) for an index that cannot be used."""
    fix = (
        "Build it again with the button below."
        if can_rebuild
        else "Ask whoever runs this knowledge base to rebuild the index."
    )
    if isinstance(exc, IndexNotFound):
        fix = "Build it with the button below." if can_rebuild else "Ask whoever runs this knowledge base to build it."
        return "There is no index yet, so there is nothing to search.", fix
    if isinstance(exc, IndexBusy):
        return "Another build is publishing the index right now.", "Try again in a minute."
    if isinstance(exc, ModelMismatch):
        return f"The index was built with another language model ({redact(exc.problem)}).", fix
    if isinstance(exc, IndexDamaged):
        return f"The index is damaged: {redact(exc.problem)}.", fix
    return f"The index cannot be used: {redact(exc.problem)}.", fix


def build_problem(message: str) -> str:
    """A failed build's message as the browser shows it."""
    return redact(message) or "the build stopped with an error (details are in the server log)"
