"""Running builds in the background while the live index keeps answering.

The app runs at most one build per index folder at a time and polls its
progress; questions keep going to the previously published index until the
build publishes a new one. The publish lock still guards against builds
started by other processes (a `python -m ingest` in a terminal).

Builds are numbered. `request` returns the number of the build that will
see the corpus as it is now: the next one, started at once when nothing
runs, or queued to start when the running one ends (a change made during a
build may come too late for it). Whoever asked keeps that number and reads
that build's outcome with `result`, so a message about a build goes to the
person who caused it, not to everyone.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from index.embed.registry import Embedder
from ingest.pipeline import BuildReport, Stage, build

log = logging.getLogger(__name__)
# Finished builds whose outcome is kept for the sessions that asked for them.
_KEEP_RESULTS = 64


@dataclass(frozen=True)
class JobState:
    """A snapshot of one build.

    Attributes:
        running: The build is under way.
        run: Its number (1 for the first build of this job; 0 before any).
        queued: Another build will start when this one ends.
        stage: The stage under way.
        done / total: Progress of that stage (files read, texts embedded).
        files_done / files_total: Files read so far, kept once reading is over.
        started / stage_started: `time.monotonic()` when the build and its stage began.
        report: What a finished build did.
        error: Why a failed build failed (the details are in the server log).
    """

    running: bool
    run: int = 0
    queued: bool = False
    stage: Stage | None = None
    done: int = 0
    total: int = 0
    files_done: int = 0
    files_total: int = 0
    started: float = 0.0
    stage_started: float = 0.0
    report: BuildReport | None = None
    error: str | None = None

    @property
    def rate(self) -> float | None:
        """Items per second in the current stage so far (None before the first item)."""
        elapsed = time.monotonic() - self.stage_started
        if not self.running or self.done <= 0 or elapsed <= 0:
            return None
        return self.done / elapsed

    @property
    def seconds_left(self) -> float | None:
        """Estimated time left in the current stage, from its rate so far."""
        rate = self.rate
        if rate is None or self.total <= self.done:
            return None
        return (self.total - self.done) / rate


class BuildJob:
    """Background builds, one at a time, for one corpus and index folder."""

    def __init__(self, corpus: Path, index_dir: Path, embedder: Embedder) -> None:
        self.corpus = corpus
        self.index_dir = index_dir
        self.embedder = embedder
        self._lock = threading.Lock()
        self._state = JobState(running=False)
        self._results: dict[int, JobState] = {}
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> JobState:
        with self._lock:
            return self._state

    def request(self) -> tuple[int, bool]:
        """Ask for a build that sees the corpus as it is now.

        Starts one when none runs; otherwise queues one (at most one waits:
        it will see every change made before it starts).

        Returns:
            That build's number, and whether it has to wait for a running build.
        """
        with self._lock:
            if self._state.running:
                self._state = replace(self._state, queued=True)
                return self._state.run + 1, True
            return self._start_locked(), False

    def result(self, run: int) -> JobState | None:
        """The outcome of build `run` once it has finished (None while it is waiting or running)."""
        with self._lock:
            return self._results.get(run)

    def wait(self, timeout: float | None = None) -> JobState:
        """Wait for the running build (and any queued after it) to finish."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            thread = self._thread
            if thread is None:
                return self.state
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if self._thread is thread or (deadline is not None and time.monotonic() >= deadline):
                return self.state

    def _start_locked(self) -> int:
        now = time.monotonic()
        run = self._state.run + 1
        self._state = JobState(running=True, run=run, started=now, stage_started=now)
        self._thread = threading.Thread(target=self._run, name="kb-build", daemon=True)
        self._thread.start()
        return run

    def _progress(self, stage: Stage, done: int, total: int) -> None:
        with self._lock:
            state = self._state
            stage_started = state.stage_started if stage == state.stage else time.monotonic()
            files = (done, total) if stage is Stage.READ else (state.files_done, state.files_total)
            self._state = replace(
                state,
                stage=stage,
                done=done,
                total=total,
                files_done=files[0],
                files_total=files[1],
                stage_started=stage_started,
            )

    def _run(self) -> None:
        try:
            report, error = build(self.corpus, self.index_dir, self.embedder, progress=self._progress), None
        except Exception as exc:  # the person sees the message; the log keeps the traceback
            log.exception("background build of %s into %s failed", self.corpus, self.index_dir)
            report, error = None, str(exc) or type(exc).__name__
        with self._lock:
            queued = self._state.queued
            finished = replace(self._state, running=False, queued=False, report=report, error=error)
            self._results[finished.run] = finished
            for old in sorted(self._results)[:-_KEEP_RESULTS]:
                del self._results[old]
            self._state = finished
            if queued:
                self._start_locked()
