"""Measuring retrieval on a question set written for a collection.

A question set is JSON lines: `{"query": str, "answer": str | null}`. For an
on-topic question, `answer` is a piece of the sentence that answers it; the
first hit whose passage contains it is the relevant one, and the answer
sentence is right when it contains it too. Off-topic questions have
`"answer": null` and should come back not answered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from index.records import Answer, Verdict
from index.search.query import clean_query
from index.search.searcher import Searcher
from index.search.sentences import answer_candidates
from index.search.settings import RetrievalMode, SearchSettings

# Recall@100 needs a hundred documents, and a document may span several
# passages, so BEIR scoring takes each retriever deeper than search does.
BEIR_CANDIDATES = 300


def beir_settings(settings: SearchSettings = SearchSettings()) -> SearchSettings:
    """`settings` with the candidate depth BEIR scoring needs (`BEIR_CANDIDATES`)."""
    return replace(settings, candidates=BEIR_CANDIDATES)


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
            is found and whose highlight contains the answering sentence.
        highlight_sentences: Answer candidates per highlight, on average (a
            highlight is one sentence, or two when they answer together).
        answered_on_topic: On-topic questions answered (should be all).
        unsure_on_topic: On-topic questions shown as "closest passages" (not answered).
        refused_off_topic: Off-topic questions not answered, shown as closest
            passages or refused (should be all).
        unsure_off_topic: Of those, the ones shown as closest passages.
        decided: Share of all questions decided right: on-topic answered, off-topic not.
        no_answer_precision / no_answer_recall: Of the questions not answered, the
            share that were off-topic; of the off-topic ones, the share not answered.
    """

    on_topic: int
    off_topic: int
    recall_at_1: float
    recall_at_3: float
    mrr: float
    sentence_accuracy: float
    highlight_sentences: float
    answered_on_topic: int
    unsure_on_topic: int
    refused_off_topic: int
    unsure_off_topic: int
    decided: float
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
            raise ValueError(f'{path}:{number}: expected {{"query": str, "answer": str|null}} ({exc})') from None
    return questions


def evaluate_questions(searcher: Searcher, questions: list[Question], depth: int = 10) -> QuestionSetReport:
    """Run every question and score the rankings, answer sentences and verdicts."""
    answers = ask_all(searcher, [q.query for q in questions], depth)
    on_topic = [(q, a) for q, a in zip(questions, answers) if q.answer]
    off_topic = [a for q, a in zip(questions, answers) if not q.answer]
    reciprocal, at_1, at_3, sentences, covered = [], 0, 0, 0, []
    for question, answer in on_topic:
        rank = next((h.rank for h in answer.hits if question.answer in h.passage.text), None)
        reciprocal.append(1 / rank if rank else 0.0)
        at_1 += rank == 1
        at_3 += rank is not None and rank <= 3
        if rank is not None:
            hit = answer.hits[rank - 1]
            sentences += question.answer in hit.answer.text
            covered.append(_candidates_within(hit))
    answered_on = sum(a.answered for _, a in on_topic)
    unsure_on = sum(a.verdict is Verdict.UNSURE for _, a in on_topic)
    refused_off = sum(not a.answered for a in off_topic)
    refused = refused_off + len(on_topic) - answered_on
    n = max(len(on_topic), 1)
    return QuestionSetReport(
        on_topic=len(on_topic),
        off_topic=len(off_topic),
        recall_at_1=at_1 / n,
        recall_at_3=at_3 / n,
        mrr=sum(reciprocal) / n,
        sentence_accuracy=sentences / n,
        highlight_sentences=float(np.mean(covered)) if covered else 0.0,
        answered_on_topic=answered_on,
        unsure_on_topic=unsure_on,
        refused_off_topic=refused_off,
        unsure_off_topic=sum(a.verdict is Verdict.UNSURE for a in off_topic),
        decided=(answered_on + refused_off) / max(len(questions), 1),
        no_answer_precision=refused_off / refused if refused else 1.0,
        no_answer_recall=refused_off / len(off_topic) if off_topic else 1.0,
    )


def ask_all(searcher: Searcher, queries: list[str], k: int = 10) -> list[Answer]:
    """`searcher.search` for each query, the questions embedded in one batch."""
    cleaned = [clean_query(q) for q in queries]
    vectors = searcher.embedder.encode([q for q in cleaned if q])
    answers, used = [], 0
    for query in cleaned:
        if query:
            answers.append(searcher.answer(query, vectors[used], k))
            used += 1
        else:
            answers.append(Answer(query, Verdict.NOT_ANSWERED, ()))
    return answers


def _candidates_within(hit) -> int:
    """How many of the passage's answer candidates the hit's highlight covers."""
    start, end = hit.answer_within(hit.passage.location.start)
    return sum(start <= s and e <= end for s, e in answer_candidates(hit.passage.text))


# --- BEIR-format evaluation: queries JSONL + qrels TSV, documents judged by their best passage.


def read_queries(path: Path) -> dict[str, str]:
    """BEIR queries: one `{"_id", "text"}` object per line."""
    queries = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                record = json.loads(line)
                queries[str(record["_id"])] = str(record["text"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f'{path}:{number}: expected {{"_id", "text"}} ({exc})') from None
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """BEIR qrels: a header line, then `query-id <tab> corpus-id <tab> score`."""
    qrels: dict[str, dict[str, int]] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines[1:], start=2):
        if line.strip():
            parts = line.split("\t") if "\t" in line else line.split()
            try:
                query, doc, score = parts[0], parts[1], int(float(parts[2]))
            except (IndexError, ValueError):
                raise ValueError(f"{path}:{number}: expected 'query-id corpus-id score', got {line!r}") from None
            qrels.setdefault(query, {})[doc] = score
    return qrels


def ndcg_at(ranked: list[str], relevance: dict[str, int], k: int) -> float:
    """nDCG@k with linear gains, as trec_eval and BEIR compute it."""
    dcg = sum(relevance.get(doc, 0) / np.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted((r for r in relevance.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / np.log2(i + 2) for i, r in enumerate(ideal))
    return float(dcg / idcg) if idcg else 0.0


def recall_at(ranked: list[str], relevance: dict[str, int], k: int) -> float:
    relevant = {doc for doc, r in relevance.items() if r > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr_at(ranked: list[str], relevance: dict[str, int], k: int) -> float:
    return next((1.0 / (i + 1) for i, doc in enumerate(ranked[:k]) if relevance.get(doc, 0) > 0), 0.0)


def documents_by_best_passage(searcher: Searcher, rows: list[int]) -> list[str]:
    """Roll a passage ranking up to documents: each document ranks where its best passage does."""
    seen: dict[str, None] = {}
    for row in rows:
        for location in searcher.passages[row].locations:
            seen.setdefault(location.doc_id, None)
    return list(seen)


def evaluate_beir(
    searcher: Searcher,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    mode: RetrievalMode | str = RetrievalMode.HYBRID,
) -> dict[str, float | int]:
    """nDCG@10, Recall@100 and MRR@10 averaged over the judged queries.

    Give `searcher` `beir_settings()` for scores comparable with the README's.

    Returns:
        `{"ndcg@10", "recall@100", "mrr@10", "queries"}`.
    """
    mode = RetrievalMode.from_str(mode)
    judged = [q for q in qrels if q in queries and any(r > 0 for r in qrels[q].values())]
    if not judged:
        raise ValueError("no query in the qrels file has a text in the queries file")
    vectors = searcher.embedder.encode([queries[q] for q in judged]) if mode is not RetrievalMode.KEYWORD else None
    totals = {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}
    for i, query in enumerate(judged):
        vector = vectors[i] if vectors is not None else np.zeros(searcher.stored.manifest.dimensions, np.float32)
        ranked = documents_by_best_passage(searcher, searcher.rank(queries[query], vector, mode=mode).rows)
        totals["ndcg@10"] += ndcg_at(ranked, qrels[query], 10)
        totals["recall@100"] += recall_at(ranked, qrels[query], 100)
        totals["mrr@10"] += mrr_at(ranked, qrels[query], 10)
    return {**{name: value / len(judged) for name, value in totals.items()}, "queries": len(judged)}


# --- Answer feedback (index.feedback): 👍 passages are relevant, 👎 alone is a recorded miss.


@dataclass(frozen=True)
class FeedbackReport:
    """The current index scored on the votes people gave.

    Attributes:
        votes / up / down: Votes counted.
        questions: Distinct questions voted on.
        judged: Questions with at least one passage marked as answering (a 👍, or "the answer is in …").
        recall_at_1 / recall_at_3: Share of judged questions whose marked passage now ranks first / in the top three.
        mrr: Mean reciprocal rank of the first marked passage in the top 10.
        misses: Questions voted 👎 with no passage named: recorded, not scored.
    """

    votes: int
    up: int
    down: int
    questions: int
    judged: int
    recall_at_1: float
    recall_at_3: float
    mrr: float
    misses: int


def evaluate_feedback(searcher: Searcher, votes: list, depth: int = 10) -> FeedbackReport:
    """Ask every judged question again and find where its marked passages rank now."""
    from index.feedback import judgments

    found = judgments(votes)
    judged = [j for j in found if j.relevant]
    answers = ask_all(searcher, [j.question for j in judged], depth)
    at_1 = at_3 = 0
    reciprocal = 0.0
    for judgment, answer in zip(judged, answers):
        rank = next(
            (
                hit.rank
                for hit in answer.hits
                if any(p.matches(hit.passage.id, hit.passage.locations) for p in judgment.relevant)
            ),
            None,
        )
        at_1 += rank == 1
        at_3 += rank is not None and rank <= 3
        reciprocal += 1 / rank if rank else 0.0
    n = max(len(judged), 1)
    up = sum(j.up for j in found)
    down = sum(j.down for j in found)
    return FeedbackReport(
        votes=up + down,
        up=up,
        down=down,
        questions=len(found),
        judged=len(judged),
        recall_at_1=at_1 / n,
        recall_at_3=at_3 / n,
        mrr=reciprocal / n,
        misses=sum(1 for j in found if not j.relevant and j.down),
    )
