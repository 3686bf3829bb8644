"""Measuring retrieval on a question set written for a collection.

A question set is JSON lines: `{"query": str, "answer": str | null}`. For an
on-topic question, `answer` is a piece of the sentence that answers it; the
first hit whose passage contains it is the relevant one, and the answer
sentence is right when it contains it too. Off-topic questions have
`"answer": null` and should come back not answered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from index.search import Searcher


@dataclass(frozen=True)
class Question:
    query: str
    answer: str | None


@dataclass(frozen=True)
class QuestionSetReport:
    """Scores of one run over a question set.

    Attributes:
        on_topic / off_topic: Question counts.
        recall_at_1 / recall_at_3: Share of on-topic questions whose answering
            passage is ranked first / in the top three.
        mrr: Mean reciprocal rank of the answering passage (0 when not in the top 10).
        sentence_accuracy: Share of on-topic questions whose answering passage
            is found and whose highlighted sentence is the answering one.
        answered_on_topic: On-topic questions answered (should be all).
        refused_off_topic: Off-topic questions refused (should be all).
        no_answer_precision / no_answer_recall: Of the questions refused, the
            share that were off-topic; of the off-topic ones, the share refused.
    """

    on_topic: int
    off_topic: int
    recall_at_1: float
    recall_at_3: float
    mrr: float
    sentence_accuracy: float
    answered_on_topic: int
    refused_off_topic: int
    no_answer_precision: float
    no_answer_recall: float


def read_questions(path: Path) -> list[Question]:
    """Read a question set, naming the line of any malformed record."""
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            questions.append(Question(str(record["query"]), record.get("answer")))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: expected {{\"query\": str, \"answer\": str|null}} ({exc})") from None
    return questions


def evaluate_questions(searcher: Searcher, questions: list[Question], depth: int = 10) -> QuestionSetReport:
    """Run every question and score the rankings, answer sentences and no-answer decisions."""
    reciprocal, at_1, at_3, sentences, answered_on, refused_off, refused_on = [], 0, 0, 0, 0, 0, 0
    on_topic = [q for q in questions if q.answer]
    off_topic = [q for q in questions if not q.answer]
    for question in on_topic:
        answer = searcher.search(question.query, k=depth)
        rank = next((h.rank for h in answer.hits if question.answer in h.passage.text), None)
        reciprocal.append(1 / rank if rank else 0.0)
        at_1 += rank == 1
        at_3 += rank is not None and rank <= 3
        if rank is not None and question.answer in answer.hits[rank - 1].answer.text:
            sentences += 1
        answered_on += answer.answered
        refused_on += not answer.answered
    for question in off_topic:
        refused_off += not searcher.search(question.query, k=depth).answered
    refused = refused_off + refused_on
    n = max(len(on_topic), 1)
    return QuestionSetReport(
        on_topic=len(on_topic),
        off_topic=len(off_topic),
        recall_at_1=at_1 / n,
        recall_at_3=at_3 / n,
        mrr=sum(reciprocal) / n,
        sentence_accuracy=sentences / n,
        answered_on_topic=answered_on,
        refused_off_topic=refused_off,
        no_answer_precision=refused_off / refused if refused else 1.0,
        no_answer_recall=refused_off / len(off_topic) if off_topic else 1.0,
    )
