"""The real model on everyday questions: the right passage and sentence, or an honest "not sure".

These are the examples a new user tried (issue "Answers a person can
trust"); each must either be answered with the passage and sentence that
answer it, or not be presented as an answer (unsure or not answered). The
question set in corpus/questions-everyday.jsonl holds them with 92 more; its
scores are measured by `python -m index eval` and bench/tune.py, and pinned
here at the level they reach, so a change that makes them worse fails.
"""

from __future__ import annotations

import json

import pytest

from index.embed.registry import BundledModel
from index.evaluate import evaluate_questions, read_questions
from index.records import Verdict
from index.search.searcher import Searcher
from index.store.reader import load
from ingest.pipeline import build
from tests.helpers import REPO

pytestmark = pytest.mark.model

# (question, a piece of the answering sentence, or None when the collection does not answer it)
EXAMPLES = [
    (
        "my knees go up slowly when I climb stairs, which muscle group is weak?",
        "lift your knee toward your body and bend at the waist are known as the hip flexors",
    ),
    ("what is spinal stenosis and who gets it?", None),
    pytest.param(
        "exercises to loosen tight hip flexors",
        "Grab the back thigh of the left leg and pull the knee toward the chest",
        # Known and measured: the general hip-flexor advice (line 10, cosine 0.73) outranks the stretch
        # itself (line 48, 0.62, 5th) and is presented with confidence 0.76. Strict: when this starts to
        # pass, the marker must go.
        marks=pytest.mark.xfail(strict=True, reason="line 10's general advice outranks the stretch with confidence"),
        id="exercises to loosen tight hip flexors",
    ),
    (
        "hwo lnog dose a brokn vertebra tak to heel",
        "vertebral fractures take weeks to heal with rest and pain relievers",
    ),
    (
        "how much does low back pain cost the US health system each year?",
        "it was estimated to be responsible for $90 billion in annual health care costs",
    ),
]


@pytest.fixture(scope="module")
def searcher(tmp_path_factory) -> Searcher:
    index_dir = tmp_path_factory.mktemp("trust") / "index"
    embedder = BundledModel()
    build(REPO / "corpus", index_dir, embedder)
    return Searcher(load(index_dir, model=embedder.name), embedder)


@pytest.mark.parametrize(("question", "answer"), EXAMPLES)
def test_example_gets_the_right_passage_and_sentence_or_an_honest_not_sure(searcher, question, answer):
    result = searcher.search(question, k=3)
    top = result.hits[0]
    if answer is None:
        assert result.verdict is not Verdict.ANSWERED, f"answered with {top.answer.text!r} ({top.confidence:.2f})"
        return
    right = answer in top.passage.text and answer in top.answer.text
    assert right or result.verdict is not Verdict.ANSWERED, (
        f"presented {top.answer.text!r} as the answer (confidence {top.confidence:.2f})"
    )


def test_the_dollar_question_is_answered_with_its_sentence(searcher):
    result = searcher.search("how much does low back pain cost the US health system each year?")
    assert result.verdict is Verdict.ANSWERED
    assert "$90 billion in annual health care costs" in result.hits[0].answer.text


def test_hits_carry_confidences_that_fall_with_rank(searcher):
    result = searcher.search("how long does a broken vertebra take to heal?", k=5)
    confidences = [h.confidence for h in result.hits]
    assert all(0 <= c <= 1 for c in confidences) and confidences[0] == max(confidences)
    assert confidences[0] > 0.5 > confidences[-1]


@pytest.mark.parametrize("name", ["questions.jsonl", "questions-everyday.jsonl"])
def test_question_sets_hold_their_measured_level(searcher, name):
    report = evaluate_questions(searcher, read_questions(REPO / "corpus" / name))
    floor = FLOORS[name]
    measured = {key: getattr(report, key) for key in floor}
    assert all(measured[key] >= value for key, value in floor.items()), measured


# Two questions below what the defaults measure (bench/RESULTS.md, "Tuning on the development sets"):
# tidy 37/38 first, 32/38 sentences, 50/52 decided; everyday 65/77, 62/77, 80/97. Enough slack for
# another backend's rounding, none for a real regression.
FLOORS = {
    "questions.jsonl": {"recall_at_1": 0.94, "sentence_accuracy": 0.78, "decided": 0.92},
    "questions-everyday.jsonl": {"recall_at_1": 0.81, "sentence_accuracy": 0.77, "decided": 0.80},
}


def test_question_set_files_are_well_formed():
    for name in ("questions.jsonl", "questions-everyday.jsonl"):
        lines = [json.loads(line) for line in (REPO / "corpus" / name).read_text(encoding="utf-8").splitlines()]
        assert all(set(line) == {"query", "answer"} for line in lines)
    everyday = read_questions(REPO / "corpus" / "questions-everyday.jsonl")
    assert sum(bool(q.answer) for q in everyday) >= 40 and sum(not q.answer for q in everyday) >= 15
