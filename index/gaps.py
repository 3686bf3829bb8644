"""Knowledge gaps: the questions the documents could not answer, logged locally and grouped.

Every question asked through the app, the HTTP API or the MCP server (and
the CLI with `--log`) is appended to `questions.log.jsonl` in the index
folder, beside the version folders and never inside one, so removing old
versions never touches it and `python -m index gaps --index DIR` reads what
a server on DIR wrote. One line per question holds exactly: the question,
when (UTC), the verdict, the confidence, the top hit's source and the index
version. Nothing else about the person is stored.

`KB_LOG_QUESTIONS=0` turns logging off; `KB_LOG_DAYS` (default 90) is how
long entries are kept: older ones are dropped when the log is next written,
and never read. Appends take an exclusive lock on the file, so several
workers may write one log.

`gaps` lists the questions answered "not answered" or "unsure", near-
identical ones grouped (the same words once case, punctuation and filler
are set aside, or nearly the same words), with how often and when last,
newest first; a group whose latest asking was answered is closed. The list
exports as a question set (`to_question_set`) that `python -m index eval
--questions` reads.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from index.records import Answer

log = logging.getLogger(__name__)

LOG = "questions.log.jsonl"
DEFAULT_DAYS = 90
GAP_VERDICTS = ("not_answered", "unsure")
# Two questions whose word sets share this much (Jaccard) are one question asked twice.
SAME_QUESTION = 0.8
_FILLER = frozenset("a an the is are do does did to of in on for please can could i you me my it".split())
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class LoggedQuestion:
    """One line of the log."""

    question: str
    time: str
    verdict: str
    confidence: float
    top_source: str | None
    version: str

    def when(self) -> datetime:
        return datetime.fromisoformat(self.time)


@dataclass(frozen=True)
class Gap:
    """Near-identical questions the documents did not answer.

    Attributes:
        question: The latest wording.
        count: How often it was asked without an answer.
        last_asked: When last (ISO 8601, UTC).
        verdict: The latest verdict ("not_answered" or "unsure").
        best_source: The latest top hit's source, when there was one.
    """

    question: str
    count: int
    last_asked: str
    verdict: str
    best_source: str | None

    def to_json(self) -> dict:
        return {
            "question": self.question,
            "count": self.count,
            "last_asked": self.last_asked,
            "verdict": self.verdict,
            "best_source": self.best_source,
        }


def logging_on(environ: Mapping[str, str] | None = None) -> bool:
    """Whether questions are logged (`KB_LOG_QUESTIONS`, on unless 0)."""
    value = (os.environ if environ is None else environ).get("KB_LOG_QUESTIONS", "1").strip().lower() or "1"
    if value not in _TRUE | _FALSE:
        raise ValueError(f"KB_LOG_QUESTIONS must be 1 or 0, got {value!r}")
    return value in _TRUE


def retention_days(environ: Mapping[str, str] | None = None) -> int:
    """How many days entries are kept (`KB_LOG_DAYS`, default 90)."""
    value = (os.environ if environ is None else environ).get("KB_LOG_DAYS", "").strip()
    try:
        days = int(value) if value else DEFAULT_DAYS
    except ValueError:
        raise ValueError(f"KB_LOG_DAYS must be a whole number of days, got {value!r}") from None
    if days < 1:
        raise ValueError(f"KB_LOG_DAYS must be at least 1, got {value!r}")
    return days


def log_question(
    index_dir: Path,
    answer: Answer | Mapping,
    version: str,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> bool:
    """Append one asked question to the index folder's log (unless `KB_LOG_QUESTIONS=0`).

    The one function every front end calls after answering: the app, the HTTP
    API, the MCP server, and the CLI with `--log`. A log that cannot be
    written is reported in the server log and never fails the question.

    Args:
        index_dir: The index folder (the log sits beside its version folders).
        answer: The `Answer`, or its JSON (`Answer.to_json()`, what POST /query returns).
        version: The index version that answered (its folder name, `v-...`).

    Returns:
        Whether a line was written.
    """
    try:
        if not logging_on(environ):
            return False
        days = retention_days(environ)
    except ValueError as exc:
        log.warning("questions are not logged: %s", exc)
        return False
    entry = _entry(answer, version, now or datetime.now(UTC))
    if not entry.question:
        return False
    try:
        _append(index_dir / LOG, entry, (now or datetime.now(UTC)) - timedelta(days=days))
    except OSError as exc:
        log.warning("cannot log the question in %s: %s", index_dir / LOG, exc)
        return False
    return True


def _entry(answer: Answer | Mapping, version: str, now: datetime) -> LoggedQuestion:
    if isinstance(answer, Answer):
        query, verdict, confidence = answer.query, answer.verdict.value, answer.confidence
        top = answer.hits[0].passage.location.source if answer.hits else None
    else:
        hits = answer.get("hits") or []
        query, verdict, confidence = (
            str(answer.get("query", "")),
            str(answer.get("verdict", "")),
            answer.get("confidence", 0.0),
        )
        top = str(hits[0].get("source")) if hits else None
    return LoggedQuestion(query, now.isoformat(timespec="seconds"), verdict, round(float(confidence), 4), top, version)


def _append(path: Path, entry: LoggedQuestion, oldest: datetime) -> None:
    """Append `entry` under the file's lock, first dropping lines older than `oldest` when there are any."""
    line = json.dumps(vars(entry), ensure_ascii=False) + "\n"
    with open(path, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            first = handle.readline()
            if first and _older(first, oldest):
                handle.seek(0)
                kept = [old for old in handle.read().splitlines(keepends=True) if not _older(old, oldest)]
                handle.seek(0)
                handle.truncate()
                handle.writelines(kept)
            handle.seek(0, os.SEEK_END)
            handle.write(line)
            handle.flush()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _older(line: str, oldest: datetime) -> bool:
    try:
        return datetime.fromisoformat(json.loads(line)["time"]) < oldest
    except (ValueError, KeyError, TypeError):
        return True  # a damaged line is dropped with the old ones


def read_log(index_dir: Path, days: int | None = None, now: datetime | None = None) -> list[LoggedQuestion]:
    """The logged questions of the last `days` days (default `KB_LOG_DAYS`), oldest first; damaged lines skipped."""
    days = retention_days() if days is None else days
    oldest = (now or datetime.now(UTC)) - timedelta(days=days)
    try:
        lines = (index_dir / LOG).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    entries = []
    for line in lines:
        try:
            data = json.loads(line)
            entry = LoggedQuestion(
                str(data["question"]),
                str(data["time"]),
                str(data["verdict"]),
                float(data.get("confidence", 0.0)),
                data.get("top_source"),
                str(data.get("version", "")),
            )
            if entry.when() >= oldest:
                entries.append(entry)
        except (ValueError, KeyError, TypeError):
            continue
    return entries


def normalise(question: str) -> str:
    """Lower case, words only, filler words out: "How long does it take to heal?" -> "how long take heal"."""
    words = re.findall(r"\w+", question.lower())
    kept = [w for w in words if w not in _FILLER]
    return " ".join(kept or words)


def same_question(a: str, b: str) -> bool:
    """Whether two normalised questions are one asked twice (equal, or nearly the same words)."""
    if a == b:
        return True
    x, y = set(a.split()), set(b.split())
    return bool(x and y) and len(x & y) / len(x | y) >= SAME_QUESTION


def gaps(entries: Iterable[LoggedQuestion]) -> list[Gap]:
    """The unanswered questions, near-identical ones grouped, newest first.

    A group is listed when its latest asking was not answered or unsure;
    `count` is how often it went unanswered.
    """
    groups: list[tuple[str, list[LoggedQuestion]]] = []
    for entry in sorted(entries, key=lambda e: e.time):
        key = normalise(entry.question)
        group = next((members for k, members in groups if same_question(k, key)), None)
        if group is None:
            groups.append((key, [entry]))
        else:
            group.append(entry)
    found = []
    for _, members in groups:
        latest = members[-1]
        if latest.verdict not in GAP_VERDICTS:
            continue  # answered since: the gap is closed
        missed = [m for m in members if m.verdict in GAP_VERDICTS]
        found.append(Gap(latest.question, len(missed), latest.time, latest.verdict, latest.top_source))
    return sorted(found, key=lambda gap: gap.last_asked, reverse=True)


def to_question_set(found: Iterable[Gap]) -> str:
    """The gaps as a question set (JSON lines, `corpus/questions*.jsonl` form) for `python -m index eval --questions`.

    Each `answer` is null: as exported, the set checks that these questions
    are still refused. Once a document answers one, write a piece of its
    answering sentence in `answer` and the set checks that it is found.
    """
    return "".join(
        json.dumps({"query": gap.question, "answer": None, "asked": gap.count, "last_asked": gap.last_asked}) + "\n"
        for gap in found
    )
