"""Which index version a server answers from: the watcher that loads the model, then each version published.

A request takes the backend's current `View` once and is answered from it
alone, so a rebuild published meanwhile never mixes into it: the watcher
polls the index folder's CURRENT pointer, loads the new version beside the
old one, and switches new requests to it in one assignment, while requests in
flight finish on the version they started with.
"""

from __future__ import annotations

import logging
import threading
from functools import cached_property
from pathlib import Path
from typing import Protocol

from index.config import Config
from index.errors import StoreError
from index.records import DocumentInfo
from index.search.settings import SearchSettings
from index.store.pointer import POINTER, current_version

log = logging.getLogger("kb.api")


class View(Protocol):
    """One index version, as a request sees it from start to end."""

    version: str

    @property
    def sources(self) -> frozenset[str]:
        """The source files of its documents (what `sources` may name)."""
        ...

    @property
    def documents(self) -> list[DocumentInfo]: ...

    def rows_of(self, doc_id: str) -> list[int]:
        """The rows of `documents` with this id (one per file that holds it)."""
        ...

    async def query(self, question: str, k: int, sources: frozenset[str] | None, explain: bool) -> dict:
        """The answer's JSON, as `query --json` prints it."""
        ...

    def info(self) -> dict:
        """What `info --json` prints."""
        ...

    def text(self, row: int) -> str:
        """Document `row`'s extracted text."""
        ...


class Backend(Protocol):
    """Serves the current index version; `create_app` starts and stops it with the app."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def view(self) -> View | None:
        """The current version, or None while none is loaded."""
        ...

    def not_ready(self) -> str:
        """Why there is no view yet (loading, or what is wrong and how to fix it)."""
        ...

    def failed(self) -> tuple[str, str] | None:
        """The newest version that could not be loaded and why, `(version, reason)`, while an older one answers."""
        ...


class DocumentLookup:
    """What a view derives from its `documents`: the source files, and each document id's rows."""

    documents: list[DocumentInfo]

    @cached_property
    def sources(self) -> frozenset[str]:
        return frozenset(d.source for d in self.documents)

    def rows_of(self, doc_id: str) -> list[int]:
        return self._rows.get(doc_id, [])

    @cached_property
    def _rows(self) -> dict[str, list[int]]:
        """Each document id's rows in `documents` (a record id can repeat in other files)."""
        rows: dict[str, list[int]] = {}
        for row, d in enumerate(self.documents):
            rows.setdefault(d.doc_id, []).append(row)
        return rows


class IndexWatcher:
    """A backend's loading thread: the model first, then the live version and each one published after it.

    A new version is loaded while the old one answers, then takes over new
    requests in one assignment; a version that cannot be loaded is logged once
    and reported by /readyz while the old one keeps answering. Subclasses say
    how a version is loaded (`_load`) and what to do when there is none (`_missing`).
    """

    thread_name = "kb-index-watch"
    # What loading a version may raise and still leave the thread watching for the next one.
    recoverable: tuple[type[Exception], ...] = (StoreError,)

    def __init__(self, config: Config, settings: SearchSettings, poll: float) -> None:
        self.config = config
        self.settings = settings
        self.poll = poll
        self.embedder = None
        self._view = None
        self._problem = "loading the model and the index"
        self._failed: tuple[str, str] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name=self.thread_name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def view(self):
        return self._view

    def not_ready(self) -> str:
        return self._problem

    def failed(self) -> tuple[str, str] | None:
        return self._failed

    def _load(self, version: Path, embedder):
        """The view answering from `version` (a folder the CURRENT pointer named)."""
        raise NotImplementedError

    def _missing(self) -> str:
        """What /readyz says while no index has been built."""
        raise NotImplementedError

    def _open_embedder(self):
        """The embedder that questions go through: the one `Config.embedder` names."""
        from index.embed.registry import embedder_for  # the model loads here, not at import

        return embedder_for(self.config)

    def _watch(self) -> None:
        try:
            embedder = self._open_embedder()
            embedder.encode(["warm up"])
            self.embedder = embedder
        except Exception as exc:  # reported by /readyz; the process stays up
            log.exception("the model cannot be loaded")
            self._problem = f"the model cannot be loaded ({exc})"
            return
        while not self._stopping.is_set():
            version = None
            try:
                version = current_version(self.config.index)
                if version is not None and (self._view is None or version.name != self._view.version):
                    self._view = self._load(version, embedder)
                    self._failed = None
                elif version is None and self._view is None:
                    self._problem = self._missing()
                elif version is not None:
                    self._failed = None  # the pointer names the version in use again
            except self.recoverable as exc:  # the old version keeps answering
                name = version.name if version is not None else POINTER
                if self._failed != (name, str(exc)):
                    log.warning("cannot load index version %s: %s", name, exc)
                self._failed = (name, str(exc))
                self._problem = str(exc)
            self._stopping.wait(self.poll)
