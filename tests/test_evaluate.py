"""Metrics against hand-computed values, BEIR file parsing, and the eval CLI on a tiny index."""

from __future__ import annotations

import math

import numpy as np
import pytest

from index.evaluate import (
    Question,
    documents_by_best_passage,
    evaluate_beir,
    evaluate_questions,
    mrr_at,
    ndcg_at,
    read_qrels,
    read_queries,
    recall_at,
)
from index.search.fusion import convex
from index.search.searcher import Searcher
from index.store.reader import load
from ingest.pipeline import build


def test_ndcg_hand_computed():
    # Relevant at ranks 2 and 3 of two relevant: DCG = 1/log2(3) + 1/log2(4); IDCG = 1 + 1/log2(3).
    expected = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at(["x", "a", "b"], {"a": 1, "b": 1}, 10) == pytest.approx(expected)
    assert ndcg_at(["a", "b"], {"a": 1, "b": 1}, 10) == pytest.approx(1.0)
    assert ndcg_at(["x", "y"], {"a": 1}, 10) == 0.0
    # Graded relevance, linear gain: ideal order is (2, 1).
    assert ndcg_at(["b", "a"], {"a": 2, "b": 1}, 10) == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    # Cut-off: a relevant document below k does not count.
    assert ndcg_at(["x", "a"], {"a": 1}, 1) == 0.0


def test_recall_and_mrr_hand_computed():
    assert recall_at(["a", "x", "b"], {"a": 1, "b": 1, "c": 1}, 2) == pytest.approx(1 / 3)
    assert recall_at(["a", "x", "b"], {"a": 1, "b": 1, "c": 1}, 100) == pytest.approx(2 / 3)
    assert mrr_at(["x", "y", "a"], {"a": 1}, 10) == pytest.approx(1 / 3)
    assert mrr_at(["x", "y", "a"], {"a": 1}, 2) == 0.0
    assert recall_at(["a"], {"a": 0}, 10) == 0.0  # zero-graded judgments are not relevant


def test_read_beir_files(tmp_path):
    (tmp_path / "q.jsonl").write_text('{"_id": "1", "text": "first"}\n\n{"_id": 2, "text": "second"}\n')
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n1\td2\t0\n2\td3\t2\n")
    assert read_queries(tmp_path / "q.jsonl") == {"1": "first", "2": "second"}
    assert read_qrels(tmp_path / "qrels.tsv") == {"1": {"d1": 1, "d2": 0}, "2": {"d3": 2}}
    (tmp_path / "bad.tsv").write_text("header\n1\td1\n")
    with pytest.raises(ValueError, match=r"bad\.tsv:2: expected 'query-id corpus-id score'"):
        read_qrels(tmp_path / "bad.tsv")


@pytest.mark.parametrize(
    ("dense", "keyword", "weight", "expected"),
    [
        ([0.9, 0.5, 0.1], [0.0, 4.0, 8.0], 0.5, [0.5, 0.5, 0.5]),
        ([0.9, 0.5, 0.1], [0.0, 4.0, 8.0], 1.0, [1.0, 0.5, 0.0]),
        ([0.9, 0.5], [3.0, 3.0], 0.3, [0.3, 0.0]),  # constant keyword scores add nothing
    ],
)
def test_convex_fusion_table(dense, keyword, weight, expected):
    assert convex(np.array(dense), np.array(keyword), weight) == pytest.approx(expected)


@pytest.fixture
def searcher(tiny_corpus, tmp_path, fake_embedder):
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    return Searcher(load(tmp_path / "idx"), fake_embedder)


def test_documents_ranked_by_best_passage(searcher):
    source = {row: [loc.doc_id for loc in p.locations] for row, p in enumerate(searcher.passages)}
    shared = next(row for row, docs in source.items() if len(docs) > 1)  # the spinal-fusion paragraph, in two files
    assert source[shared] == ["copy.txt", "fractures.txt"]  # corpus order: copy.txt is read first
    hips = next(row for row, docs in source.items() if docs == ["hips/flexors.md"])
    # A ranking not in index order: a hips passage first, then the shared passage.
    docs = documents_by_best_passage(searcher, [hips, shared, *reversed(range(len(source)))])
    assert docs == ["hips/flexors.md", "copy.txt", "fractures.txt"]
    # Each document ranks where its best passage does: a passage found in two documents ranks both.
    assert documents_by_best_passage(searcher, [shared]) == ["copy.txt", "fractures.txt"]
    assert documents_by_best_passage(searcher, []) == []


def test_evaluate_beir_on_tiny_index(searcher):
    queries = {"q1": "kyphoplasty balloon vertebra", "q2": "icing inflamed hip joint"}
    qrels = {"q1": {"fractures.txt": 1}, "q2": {"hips/flexors.md": 1}, "q3": {"x": 1}}
    scores = evaluate_beir(searcher, queries, qrels, mode="hybrid")
    assert scores == {"ndcg@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0, "queries": 2}
    keyword = evaluate_beir(searcher, queries, qrels, mode="keyword")
    assert keyword["queries"] == 2 and keyword["mrr@10"] == 1.0
    with pytest.raises(ValueError, match="mode must be one of dense, keyword, hybrid"):
        evaluate_beir(searcher, queries, qrels, mode="sparse")


def test_question_set_report(searcher):
    report = evaluate_questions(
        searcher,
        [
            Question("vertebral fractures heal weeks", "take weeks to heal"),
            Question("kyphoplasty balloon compressed vertebra", "Kyphoplasty inflates a balloon"),
            Question("What is the capital of France?", None),
        ],
    )
    assert (report.on_topic, report.off_topic) == (2, 1)
    assert report.recall_at_1 == 1.0 and report.mrr == 1.0
    assert report.sentence_accuracy == 1.0
    assert report.refused_off_topic == 1 and report.no_answer_precision == 1.0
