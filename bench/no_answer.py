"""How well the answered / not-answered decision holds on two different collections.

The decision compares the best question-passage cosine similarity with one
threshold that belongs to the model, not to a collection. This script checks
that claim on the bundled corpus (its question set) and on SciFact (test
claims as on-topic questions; general-knowledge questions as off-topic), and
sweeps the threshold to show the margin on either side.

    python -m ingest && python -m ingest --corpus ../shared/eval/scifact/corpus.jsonl --index data/scifact
    python bench/no_answer.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from report import record, table

from index.config import Config
from index.embedding import embedder_for
from index.evaluate import read_qrels, read_queries, read_questions
from index.search import Searcher, SearchSettings
from index.store import load

# Off-topic for a biomedical abstract collection: no health questions here.
GENERAL = [
    "What is the capital of France?",
    "best recipe for chocolate chip cookies",
    "how do I reverse a linked list in Python",
    "should I invest in index funds or bonds",
    "who won the 2018 football world cup",
    "how far is the moon from the earth",
    "weather tomorrow",
    "how to train a puppy to sit",
    "translate good morning into Japanese",
    "how do I change a flat bicycle tyre",
    "who wrote the novel Pride and Prejudice",
    "cheap flights to Lisbon in May",
]


def best_similarities(searcher: Searcher, questions: list[str]) -> np.ndarray:
    vectors = searcher.embedder.encode(questions)
    return np.array([max(searcher.rank(q, v).similarity.values()) for q, v in zip(questions, vectors)])


def rates(on: np.ndarray, off: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(on-topic answered, no-answer precision, no-answer recall) at a threshold."""
    refused_on, refused_off = int((on < threshold).sum()), int((off < threshold).sum())
    precision = refused_off / (refused_on + refused_off) if refused_on + refused_off else 1.0
    return 1 - refused_on / len(on), precision, refused_off / len(off)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundled", type=Path, default=Path("data/index"))
    parser.add_argument("--scifact", type=Path, default=Path("data/scifact"))
    parser.add_argument("--data", type=Path, default=Path("../shared/eval/scifact"))
    args = parser.parse_args()

    embedder = embedder_for(Config.resolve())
    threshold = SearchSettings().answer_threshold
    questions = read_questions(Path("corpus/questions.jsonl"))
    bundled = Searcher(load(args.bundled, model=embedder.name), embedder)
    scifact = Searcher(load(args.scifact, model=embedder.name), embedder)
    queries = read_queries(args.data / "queries.jsonl")
    claims = [queries[q] for q in read_qrels(args.data / "qrels" / "test.tsv")]
    sets = {
        "bundled corpus": (
            best_similarities(bundled, [q.query for q in questions if q.answer]),
            best_similarities(bundled, [q.query for q in questions if not q.answer]),
        ),
        "SciFact": (best_similarities(scifact, claims), best_similarities(scifact, GENERAL)),
    }
    rows = []
    for name, (on, off) in sets.items():
        for t in (0.30, 0.35, threshold, 0.45, 0.50):
            answered, precision, recall = rates(on, off, t)
            mark = " (default)" if t == threshold else ""
            rows.append(
                [
                    name,
                    f"{t:.2f}{mark}",
                    f"{len(on)}/{len(off)}",
                    f"{answered:.3f}",
                    f"{precision:.3f}",
                    f"{recall:.3f}",
                ]
            )
        rows.append(
            [
                name,
                "similarity range",
                "",
                f"on-topic min {on.min():.2f}, median {np.median(on):.2f}",
                f"off-topic max {off.max():.2f}",
                "",
            ]
        )
    record(
        "No-answer decision on two collections",
        table(
            [
                "collection",
                "threshold",
                "on/off questions",
                "on-topic answered",
                "no-answer precision",
                "no-answer recall",
            ],
            rows,
        ),
    )


if __name__ == "__main__":
    main()
