"""What a build looks like to the person waiting for it: where it is, how fast, and what it did.

Pure functions of `ingest.jobs.JobState`, so the wording is tested without
a browser. Counts are the build's own: files read, and the pieces of text
(new passages and their candidate answer sentences) given to the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from index.counting import document_count, plural
from index.records import Skipped
from ingest.jobs import JobState
from ingest.pipeline import Stage
from ingest.uploads import Outcome
from ui.errors import build_problem

MEANWHILE = "Answers come from the current index meanwhile."


def fraction(state: JobState) -> float:
    """How far the build is, 0..1, for a progress bar (reading a third, the model the rest)."""
    if state.stage is Stage.PUBLISH:
        return 0.97
    part = state.done / state.total if state.total else 0.0
    if state.stage is Stage.EMBED:
        return min(0.33 + 0.62 * part, 0.95)
    return min(0.33 * part, 0.33)


class TimeLeft:
    """A stage's time left, smoothed, and whether it is steady enough to say "about".

    The raw estimate (items left at the rate so far) jumps while a stage
    warms up: the first files are small, the model's first batch is slow, and
    a value near a minute flips between "1 min" and "2 min". Each raw
    estimate is blended into the previous one, counted down by the time
    passed (`SMOOTHING` of the new one); the estimate is steady once the
    last `STEADY_SAMPLES` raw estimates are all within `STEADY_SPREAD` of it,
    and only then is a time said.
    """

    SMOOTHING = 0.3
    STEADY_SAMPLES = 4
    STEADY_SPREAD = 0.25

    def __init__(self) -> None:
        self.stage: tuple | None = None
        self.seconds: float | None = None
        self.at = 0.0
        self.raw: list[float] = []

    def update(self, stage: tuple, raw: float | None, now: float) -> float | None:
        """Feed one raw estimate (None: none yet) for `stage` at time `now`; returns the steady estimate or None."""
        if stage != self.stage:
            self.__init__()
            self.stage = stage
        if raw is None:
            return None
        if self.seconds is None:
            self.seconds = raw
        else:
            counted_down = max(self.seconds - (now - self.at), 0.0)
            self.seconds = self.SMOOTHING * raw + (1 - self.SMOOTHING) * counted_down
        self.at = now
        self.raw = [*self.raw[-(self.STEADY_SAMPLES - 1) :], raw]
        return self.seconds if self.steady else None

    @property
    def steady(self) -> bool:
        if self.seconds is None or len(self.raw) < self.STEADY_SAMPLES:
            return False
        spread = self.STEADY_SPREAD * max(self.seconds, 10.0)  # under 10 s, a few seconds either way is steady
        return all(abs(raw - self.seconds) <= spread for raw in self.raw)


def progress_text(state: JobState, time_left: TimeLeft | None = None) -> str:
    """One line: the stage, its counts, the rate and the time left (said once `time_left` is steady)."""
    files = f"{state.files_done:,} of {plural(state.files_total, 'file')}"
    if state.stage is None or (state.stage is Stage.READ and state.total == 0):
        text = "Looking for new and changed documents…"
    elif state.stage is Stage.READ:
        text = f"Reading documents: {files}{_pace(state, 'files', time_left)}."
    elif state.stage is Stage.EMBED:
        text = (
            f"Read {files}. Learning the new text: {state.done:,} of "
            f"{plural(state.total, 'passage or sentence', 'passages and sentences')}{_pace(state, 'a second', time_left)}."
        )
    else:
        text = "Switching to the new index…"
    queued = " Another update will follow with the latest changes." if state.queued else ""
    return f"{text}{queued} {MEANWHILE}"


def _pace(state: JobState, unit: str, time_left: TimeLeft | None = None) -> str:
    rate, left = state.rate, state.seconds_left
    pace = ""
    if rate is not None:
        pace += f" · {rate:,.1f} {unit if unit == 'a second' else unit + ' a second'}"
    if time_left is not None:
        left = time_left.update((state.run, state.stage), left, time.monotonic())
        if left is None and rate is not None:
            return pace + " · working out the time left"
    if left is not None:
        pace += f" · about {_duration(left)} left"
    return pace


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"


@dataclass(frozen=True)
class Change:
    """What one person changed and is waiting to see in the index.

    Attributes:
        run: The build that will include it (`BuildJob.request`).
        saved: Uploads saved, as (source, outcome).
        deleted: Sources deleted.
        rebuild: A rebuild asked for without any change (to say "nothing changed").
    """

    run: int
    saved: tuple[tuple[str, Outcome], ...] = ()
    deleted: tuple[str, ...] = ()
    rebuild: bool = False


@dataclass(frozen=True)
class Message:
    """What to tell the person once their change's build is done: toasts and one banner."""

    level: str  # "success", "warning" or "error"
    banner: str
    toasts: tuple[str, ...] = field(default=())


def message(change: Change, result: JobState) -> Message:
    """The message for `change`, whose build finished as `result`."""
    if result.error is not None:
        return Message(
            "error",
            f"The update failed; answers still come from the previous index. {build_problem(result.error)}",
        )
    report = result.report
    skipped = report.skipped if report is not None else ()
    toasts, problems = [], 0
    for source, how in change.saved:
        reason = _skip_reason(source, skipped)
        if reason is not None:
            problems += 1
            toasts.append(f"Skipped {source}: {reason}. It is listed on the Documents page, where you can delete it.")
        elif how is Outcome.UNCHANGED:
            toasts.append(f"Already there, unchanged: {source}")
        else:
            toasts.append(f"{'Replaced' if how is Outcome.REPLACED else 'Added'} {source}")
    toasts.extend(f"Deleted {source}: it no longer answers" for source in change.deleted)
    if change.rebuild and not change.saved and not change.deleted and report is not None and not report.published:
        return Message("success", "Nothing changed: the index already matches the documents folder.")
    documents = document_count(report.files, report.documents) if report is not None else "the documents"
    seconds = f" in {report.seconds:.1f} s" if report is not None else ""
    banner = f"The index is up to date{seconds}: {documents}."
    if problems:
        return Message(
            "warning", f"{banner} {plural(problems, 'file')} could not be read; see the Documents page.", tuple(toasts)
        )
    return Message("success", banner, tuple(toasts))


def _skip_reason(source: str, skipped: tuple[Skipped, ...]) -> str | None:
    """Why the build skipped `source` (the whole file), or None when it was read."""
    return next((item.reason for item in skipped if item.source == source), None)
