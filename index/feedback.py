"""Answer feedback: 👍 and 👎 votes, stored beside the index as judgments to score it on.

A vote is stored with the question, the passage it judges (the one the
answer box quoted: its id, source, start and end), optionally the passage
the person says holds the answer instead ("the answer is in …"), the
index version and the time, one JSON line each in `feedback.jsonl` in the
index folder (beside the version folders, like the question log of
`index.gaps`). Appends take the file's lock.

The votes become an evaluation set (`judgments`): a 👍 passage is
relevant to its question, and so is a passage named as holding the answer;
a 👎 with no passage named only records the miss. Ranking does not learn
from them: they measure, `python -m index eval --feedback` and the
Documents page's quality panel report it.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from index.records import Choice, Location

FEEDBACK = "feedback.jsonl"


class Thumb(Choice):
    """A vote on an answer."""

    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class QuotedPassage:
    """A passage as a vote names it: its id, and where it is (its first location)."""

    id: str
    source: str
    start: int
    end: int
    doc_id: str | None = None

    def matches(self, passage_id: str, locations: Iterable[Location]) -> bool:
        """Whether a passage (by id, or by overlapping this span in the same file) is this one.

        A rebuild that cut the document differently keeps the span, not the id.
        """
        return passage_id == self.id or any(
            loc.source == self.source and loc.start < self.end and self.start < loc.end for loc in locations
        )

    @classmethod
    def from_json(cls, data: Mapping) -> QuotedPassage:
        return cls(
            str(data.get("id") or ""),
            str(data["source"]),
            int(data["start"]),
            int(data["end"]),
            None if data.get("doc_id") is None else str(data["doc_id"]),
        )


@dataclass(frozen=True)
class Vote:
    """One 👍 or 👎.

    Attributes:
        question: The question as searched.
        vote: Up or down.
        passage: The passage the answer quoted (None when nothing was quoted).
        answer_in: The passage the person says holds the answer, when they named one.
        version: The index version that answered.
        time: When, ISO 8601 in UTC.
    """

    question: str
    vote: Thumb
    passage: QuotedPassage | None
    answer_in: QuotedPassage | None
    version: str
    time: str = ""

    def to_json(self) -> dict:
        data = asdict(self)
        data["vote"] = self.vote.value
        return data

    @classmethod
    def from_json(cls, data: Mapping) -> Vote:
        def passage(value):
            return None if value is None else QuotedPassage.from_json(value)

        return cls(
            str(data["question"]),
            Thumb.from_str(str(data["vote"])),
            passage(data.get("passage")),
            passage(data.get("answer_in")),
            str(data.get("version", "")),
            str(data.get("time", "")),
        )


@dataclass(frozen=True)
class Judgment:
    """What the votes on one question say: the passages that answer it (none: only misses)."""

    question: str
    relevant: tuple[QuotedPassage, ...]
    up: int
    down: int


def record_vote(index_dir: Path, vote: Vote) -> Vote:
    """Append `vote` (timed now, unless it has a time) to the index folder's feedback file; returns it as stored."""
    if not vote.time:
        vote = Vote(vote.question, vote.vote, vote.passage, vote.answer_in, vote.version, _now())
    line = json.dumps(vote.to_json(), ensure_ascii=False) + "\n"
    with open(index_dir / FEEDBACK, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.write(line)
            handle.flush()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return vote


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_votes(path: Path) -> list[Vote]:
    """The votes in a feedback file (the index folder's `feedback.jsonl`), oldest first.

    Raises:
        ValueError: A line is not a vote; the message names the file and the line.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    votes = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            votes.append(Vote.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f'{path}:{number}: expected a vote {{"question", "vote": "up"|"down", "passage", ...}} ({exc})'
            ) from None
    return votes


def judgments(votes: Iterable[Vote]) -> list[Judgment]:
    """The votes grouped by question: a 👍's passage and every named passage are relevant."""
    by_question: dict[str, list[Vote]] = {}
    for vote in votes:
        by_question.setdefault(vote.question, []).append(vote)
    found = []
    for question, group in by_question.items():
        relevant: list[QuotedPassage] = []
        for vote in group:
            named = [vote.answer_in] if vote.answer_in is not None else []
            if vote.vote is Thumb.UP and vote.passage is not None and vote.answer_in is None:
                named.append(vote.passage)
            relevant += [p for p in named if p not in relevant]
        up = sum(v.vote is Thumb.UP for v in group)
        found.append(Judgment(question, tuple(relevant), up, len(group) - up))
    return found
