"""A corpus folder that indexes itself: each burst of changes, once settled, becomes one incremental build.

`CorpusWatcher` follows the folder with watchfiles (inotify on Linux) and
runs its `build` callable, one build at a time and never two: changes that
arrive during a build wait for the next one. A burst (a folder copied in,
a `git pull`) is one build, because the watcher waits until no change has
come for `WatchSettings.settle` seconds and every changed file has kept its
size and modification time for `WatchSettings.stable` seconds (a file still
being written is not read half-done).

What it ignores: editors' temporary and backup files (`~`, `.swp`, `.tmp`,
`#autosave#`, hidden files and folders), which `discover` would leave out
anyway, so saving in vim is one change, not four. What it survives: the
corpus folder vanishing for a moment (a sync tool replacing it; nothing is
built while it is gone, so the index is never emptied by accident), the
folder being replaced by another (its identity is checked), a build that
fails (reported, the next change tries again) and another process holding
the index (tried again shortly).

A rename is one change: the build re-reads the file under its new name,
but its passages' ids are hashes of their text, so every vector is reused
(`ingest.vectors.VectorCache`) and nothing is embedded; the build's
`IndexChange` names it a rename and citations show the new name.

`python -m ingest --watch` builds directly (`build_now`); the app
(`KB_WATCH=1`) goes through its `BuildJob` (`build_through`), so the
watcher's builds and the app's queue behind each other.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from index.counting import plural
from index.errors import IndexBusy
from ingest.jobs import BuildJob
from ingest.pipeline import BuildReport

log = logging.getLogger(__name__)

# Editors' and downloaders' scratch files: vim's swap files and its write test "4913", emacs' #autosave#
# and .#lock, backups ending in ~, and partial downloads.
TEMPORARY_SUFFIXES = (".swp", ".swo", ".swx", ".tmp", ".temp", ".part", ".partial", ".crdownload", ".download")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def watch_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the app should watch its corpus folder (`KB_WATCH=1`; off by default).

    Raises:
        ValueError: KB_WATCH holds something that is neither on nor off.
    """
    value = (os.environ if environ is None else environ).get("KB_WATCH", "").strip().lower()
    if value not in _TRUE | _FALSE:
        raise ValueError(f"KB_WATCH must be 1 or 0 (or true/false), got {value!r}")
    return value in _TRUE


def is_temporary(relative: str) -> bool:
    """Whether a path (relative to the corpus) is an editor's scratch file or hidden, never a document."""
    parts = relative.replace(os.sep, "/").split("/")
    name = parts[-1]
    return (
        any(part.startswith(".") for part in parts)
        or name.endswith("~")
        or name.lower().endswith(TEMPORARY_SUFFIXES)
        or (name.startswith("#") and name.endswith("#"))
        or name == "4913"
    )


@dataclass(frozen=True)
class WatchSettings:
    """How long the watcher waits before building.

    Attributes:
        settle: Seconds without any new change before a build starts.
        stable: Seconds a changed file's size and modification time must hold (it may still be being written).
        longest: Seconds a build may be put off by files that keep changing; then it runs anyway.
        poll: Seconds between checks that the corpus folder is still there (and while it is gone).
        busy_retry: Seconds before trying again when another process is building the index.
    """

    settle: float = 1.0
    stable: float = 0.5
    longest: float = 60.0
    poll: float = 0.2
    busy_retry: float = 2.0


@dataclass(frozen=True)
class WatchEvent:
    """One build the watcher ran.

    Attributes:
        number: 1 for the first build (the one that catches up when watching starts).
        paths: The changed paths (relative to the corpus) that led to it; empty for the first.
        report: What the build did (None when it failed).
        error: Why it failed.
        at: When it finished (`time.time()`).
    """

    number: int
    paths: tuple[str, ...]
    report: BuildReport | None
    error: str | None
    at: float

    def describe(self) -> str:
        """One line for the terminal: what changed and what the build did."""
        stamp = time.strftime("%H:%M:%S", time.localtime(self.at))
        if self.error is not None:
            return f"{stamp} build failed, the index is unchanged: {self.error}"
        report = self.report
        if report is None or not report.published:
            return f"{stamp} the index is up to date"
        change = report.change.summary() if report.change is not None else "rebuilt"
        return (
            f"{stamp} {change}: {plural(report.passages, 'passage')} "
            f"({report.embedded:,} embedded, {report.reused:,} reused) in {report.seconds:.1f}s"
        )


class CorpusWatcher:
    """Watches one corpus folder and runs `build` after each settled burst of changes, one at a time.

    Each finished build is put on `events` (a queue: tests and the app wait
    on it instead of sleeping) and passed to `on_event`.
    """

    def __init__(
        self,
        corpus: Path,
        build: Callable[[], BuildReport],
        settings: WatchSettings = WatchSettings(),
        on_event: Callable[[WatchEvent], None] | None = None,
    ) -> None:
        self.corpus = corpus
        self.build = build
        self.settings = settings
        self.on_event = on_event
        self.events: queue.Queue[WatchEvent] = queue.Queue()
        self.builds = 0
        self.last: WatchEvent | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- running

    def start(self) -> CorpusWatcher:
        """Watch in a daemon thread (the app, tests); returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="kb-corpus-watch", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Build once to catch up, then watch until `stop` (or Ctrl-C in the terminal)."""
        pending: set[str] = {""}  # "" : whatever changed while nobody watched
        while not self._stop.is_set():
            if not self._wait_for_folder():
                return
            try:
                self._watch(pending)
            except (OSError, RuntimeError) as exc:  # the folder went while watchfiles held it
                log.info("watching %s stopped (%s); watching again when it is back", self.corpus, exc)
            pending.add("")  # whatever happened while it was away is picked up by the next build

    def _wait_for_folder(self) -> bool:
        """Wait until the corpus folder exists; False when asked to stop first."""
        while not self.corpus.is_dir():
            if self._stop.wait(self.settings.poll):
                return False
        return True

    def _watch(self, pending: set[str]) -> None:
        import watchfiles  # imported here: building never needs it

        identity = _identity(self.corpus)
        first_change = last_change = time.monotonic()
        sizes: dict[str, tuple[float, tuple[int, int] | None]] = {}
        changes = watchfiles.watch(
            self.corpus,
            watch_filter=self._relevant,
            debounce=int(self.settings.settle * 1000),
            step=50,
            stop_event=self._stop,
            rust_timeout=int(self.settings.poll * 1000),
            yield_on_timeout=True,
            raise_interrupt=False,
        )
        if pending:
            self._build_when_ready(pending, sizes, first_change, last_change)
        for batch in changes:
            if _identity(self.corpus) != identity:
                return  # gone or replaced: wait for it, then watch the folder that is there
            if batch:
                now = time.monotonic()
                if not pending:
                    first_change = now
                last_change = now
                pending.update(self._relative(path) for _, path in batch)
            if pending:
                self._build_when_ready(pending, sizes, first_change, last_change)

    def _build_when_ready(self, pending: set[str], sizes: dict, first_change: float, last_change: float) -> None:
        now = time.monotonic()
        overdue = now - first_change >= self.settings.longest
        settled = now - last_change >= self.settings.settle
        if not overdue and not (settled and self._stable(pending, sizes, now)):
            return
        paths = tuple(sorted(p for p in pending if p))
        try:
            report, error = self.build(), None
        except IndexBusy:  # a build from elsewhere (a terminal, the app): ours follows it
            self._stop.wait(self.settings.busy_retry)
            return
        except Exception as exc:  # reported; the next change tries again
            log.exception("the watched build of %s failed", self.corpus)
            report, error = None, str(exc) or type(exc).__name__
        pending.clear()
        sizes.clear()
        self.builds += 1
        event = WatchEvent(self.builds, paths, report, error, time.time())
        self.last = event
        self.events.put(event)
        if self.on_event is not None:
            self.on_event(event)

    def _stable(self, pending: set[str], sizes: dict, now: float) -> bool:
        """Whether every changed file kept its size and time for `stable` seconds (gone files are stable)."""
        steady = True
        for name in pending:
            if not name:
                continue
            try:
                stat = (self.corpus / name).stat()
                shape = (stat.st_size, stat.st_mtime_ns)
            except OSError:
                shape = None
            seen = sizes.get(name)
            if seen is None or seen[1] != shape:
                sizes[name] = (now, shape)
                steady = False
            elif now - seen[0] < self.settings.stable:
                steady = False
        return steady

    def _relevant(self, change, path: str) -> bool:
        """watchfiles' filter: everything but scratch files and hidden ones."""
        try:
            relative = Path(path).relative_to(self.corpus).as_posix()
        except ValueError:
            return False
        return relative != "." and not is_temporary(relative)

    def _relative(self, path: str) -> str:
        return Path(path).relative_to(self.corpus).as_posix()


def _identity(folder: Path) -> tuple[int, int] | None:
    """The folder's device and inode (None when it is gone), to notice it being replaced."""
    try:
        stat = folder.stat()
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


def build_now(build: Callable[..., BuildReport], *args, **kwargs) -> Callable[[], BuildReport]:
    """A watcher's `build` that runs `ingest.pipeline.build(*args, **kwargs)` in the watcher's thread."""

    def run() -> BuildReport:
        return build(*args, **kwargs)

    return run


def build_through(job: BuildJob, poll: float = 0.2) -> Callable[[], BuildReport]:
    """A watcher's `build` that asks the app's `BuildJob` (queued behind a running build) and waits for it."""

    def run() -> BuildReport:
        number, _ = job.request()
        while (result := job.result(number)) is None:
            time.sleep(poll)
        if result.error is not None:
            raise RuntimeError(result.error)
        if result.report is None:
            raise RuntimeError("the build finished without a report")
        return result.report

    return run
