"""Running a build in the background while the live index keeps answering.

The app starts at most one build per index folder at a time and polls its
progress; questions keep going to the previously published index until the
build publishes a new one. The publish lock still guards against builds
started by other processes (a `python -m ingest` in a terminal).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from index.embedding import Embedder
from ingest.pipeline import BuildReport, Stage, build


@dataclass(frozen=True)
class JobState:
    """A snapshot of a background build."""

    running: bool
    stage: Stage | None = None
    done: int = 0
    total: int = 0
    started: float = 0.0
    stage_started: float = 0.0
    report: BuildReport | None = None
    error: str | None = None

    @property
    def seconds_left(self) -> float | None:
        """Estimated time left in the current stage, from its rate so far."""
        if not self.running or self.done <= 0 or self.total <= self.done:
            return None
        elapsed = time.monotonic() - self.stage_started
        return elapsed / self.done * (self.total - self.done)


class BuildJob:
    """One background build at a time for one corpus and index folder."""

    def __init__(self, corpus: Path, index_dir: Path, embedder: Embedder) -> None:
        self.corpus = corpus
        self.index_dir = index_dir
        self.embedder = embedder
        self._lock = threading.Lock()
        self._state = JobState(running=False)
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> JobState:
        with self._lock:
            return self._state

    def start(self) -> bool:
        """Start a build unless one is running. Returns whether a new build started."""
        with self._lock:
            if self._state.running:
                return False
            now = time.monotonic()
            self._state = JobState(running=True, stage=Stage.READ, started=now, stage_started=now)
            self._thread = threading.Thread(target=self._run, name="kb-build", daemon=True)
            self._thread.start()
            return True

    def wait(self, timeout: float | None = None) -> JobState:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.state

    def _progress(self, stage: Stage, done: int, total: int) -> None:
        with self._lock:
            state = self._state
            stage_started = state.stage_started if stage == state.stage else time.monotonic()
            self._state = JobState(True, stage, done, total, state.started, stage_started)

    def _run(self) -> None:
        try:
            report = build(self.corpus, self.index_dir, self.embedder, progress=self._progress)
        except Exception as exc:  # shown to the user; the live index is untouched
            with self._lock:
                self._state = JobState(False, self._state.stage, started=self._state.started, error=str(exc))
            return
        with self._lock:
            self._state = JobState(False, None, started=self._state.started, report=report)
