"""Search over a tiny index with the fake embedder: fusion, answers, filters, context."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from index.search import Fusion, RetrievalMode, Searcher, SearchSettings, rrf
from index.store import load
from ingest.pipeline import build
from tests.helpers import REPO


@pytest.fixture
def searcher(tiny_corpus, tmp_path, fake_embedder) -> Searcher:
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    return Searcher(load(tmp_path / "idx"), fake_embedder)


@pytest.mark.parametrize(
    ("rankings", "k", "expected_order"),
    [
        ([[1, 2, 3], [1, 2, 3]], 60, [1, 2, 3]),  # agreement keeps the order
        ([[1, 2], [2, 1]], 60, [1, 2]),  # equal sums: ties fall back to id order
        ([[1, 2, 3], [3]], 60, [3, 1, 2]),  # in both lists beats first in one: 1/63 + 1/61 > 1/61
        ([[1, 2, 3, 4], [4, 3]], 0, [4, 1, 3, 2]),  # k=0: 4 gets 1/4 + 1, 1 gets 1, 3 gets 1/3 + 1/2
    ],
)
def test_rrf_orders_table(rankings, k, expected_order):
    fused = rrf(rankings, k)
    assert sorted(fused, key=lambda item: (-fused[item], item)) == expected_order


def test_rrf_scores_are_sums_of_reciprocal_ranks():
    fused = rrf([[7, 8], [8]], 60)
    assert fused[7] == pytest.approx(1 / 61)
    assert fused[8] == pytest.approx(1 / 62 + 1 / 61)


def test_relevant_passage_first_with_answer_sentence(searcher):
    answer = searcher.search("how many weeks do vertebral fractures take to heal", k=3)
    assert answer.answered
    top = answer.hits[0]
    assert top.passage.location.source == "fractures.txt"
    assert top.answer.text == "Vertebral fractures take weeks to heal with rest and pain relievers."
    document = (searcher.stored.path.parent.parent / "corpus" / "fractures.txt").read_text(encoding="utf-8")
    assert document[top.answer.start : top.answer.end] == top.answer.text


def test_answer_sentence_is_not_merely_the_first(searcher):
    answer = searcher.search("balloon kyphoplasty compressed vertebra", k=1)
    assert answer.hits[0].answer.text.startswith("Kyphoplasty inflates a balloon")


def test_duplicate_text_returned_once_with_all_locations(searcher):
    answer = searcher.search("spinal fusion bone grafts screws", k=5)
    fusion = [h for h in answer.hits if "Spinal fusion" in h.passage.text]
    assert len(fusion) == 1
    assert {loc.source for loc in fusion[0].passage.locations} == {"copy.txt", "fractures.txt"}
    assert len({h.passage.id for h in answer.hits}) == len(answer.hits)


def test_answered_is_decided_by_the_best_similarity_against_the_threshold(searcher):
    """Not by the fake embedder's geometry: the same hits flip at exactly the threshold."""
    # Shares "hip" with the corpus, so its best similarity is above zero but below 0.40.
    question = "What is the capital of France, and does it have hip museums?"
    answer = searcher.search(question)
    best = max(h.similarity for h in answer.hits)
    assert answer.hits and 0 < best < searcher.settings.answer_threshold and not answer.answered
    at_best = Searcher(searcher.stored, searcher.embedder, replace(searcher.settings, answer_threshold=best))
    above_best = Searcher(searcher.stored, searcher.embedder, replace(searcher.settings, answer_threshold=best + 1e-6))
    assert at_best.search(question).answered and not above_best.search(question).answered
    assert at_best.search(question).hits == answer.hits  # the threshold decides "answered", nothing else


def test_ranks_and_scores_are_consistent(searcher):
    answer = searcher.search("hip flexors knee stretch", k=4)
    assert [h.rank for h in answer.hits] == list(range(1, len(answer.hits) + 1))
    scores = [h.score for h in answer.hits]
    assert scores == sorted(scores, reverse=True)
    assert all(h.dense_rank is not None or h.keyword_rank is not None for h in answer.hits)


def test_source_filter_limits_hits(searcher):
    answer = searcher.search("hip flexors knee", k=5, sources=frozenset({"fractures.txt"}))
    assert answer.hits
    assert all(any(loc.source == "fractures.txt" for loc in h.passage.locations) for h in answer.hits)


def test_empty_query_returns_nothing(searcher):
    answer = searcher.search("   \n ")
    assert answer.hits == () and not answer.answered


def test_context_returns_neighbours_in_document_order(searcher):
    answer = searcher.search("icing inflamed hip joint", k=1)
    neighbours = searcher.context(answer.hits[0].passage.location)
    assert [n.is_hit for n in neighbours] == [False, True]
    assert neighbours[0].text.startswith("# Hip flexors")


def test_settings_validate():
    with pytest.raises(ValueError, match="candidates must be at least 1, got 0"):
        SearchSettings(candidates=0)


def test_stored_answer_sentences_equal_the_query_time_computation(tmp_path, fake_embedder):
    build(REPO / "corpus", tmp_path / "idx", fake_embedder)
    stored = load(tmp_path / "idx")
    assert stored.sentences is not None and stored.manifest.sentences > len(stored.passages)
    precomputed = Searcher(stored, fake_embedder)
    at_query_time = Searcher(replace(stored, sentences=None), fake_embedder)
    questions = [
        json.loads(line)["query"]
        for line in (REPO / "corpus" / "questions.jsonl").read_text().splitlines()
        if line.strip()
    ]
    fake_embedder.encoded = 0
    answers = [precomputed.search(q, k=5) for q in questions]
    assert fake_embedder.encoded == len(questions)  # only the questions were embedded
    choices = 0
    for question, answer in zip(questions, answers):
        expected = at_query_time.search(question, k=5)
        assert [h.passage for h in answer.hits] == [h.passage for h in expected.hits]
        vector = fake_embedder.encode([question])[0]
        for hit, other in zip(answer.hits, expected.hits):
            spans, stored_scores = precomputed.sentence_scores(
                question, vector, hit.passage, precomputed.passages.index(hit.passage)
            )
            _, fresh_scores = at_query_time.sentence_scores(question, vector, hit.passage)
            np.testing.assert_allclose(stored_scores, fresh_scores, atol=2e-3)  # float16 storage
            if hit.answer != other.answer:  # only a near-tie may flip
                assert np.sort(fresh_scores)[-1] - np.sort(fresh_scores)[-2] < 2e-3, question
            choices += len(spans) > 1
    assert choices > 100  # most hits had a real choice of sentence


def test_modes_and_fusions_parse_their_values_and_name_the_choices():
    assert RetrievalMode.from_str("dense") is RetrievalMode.DENSE and RetrievalMode.DENSE == "dense"
    assert [m.label for m in RetrievalMode] == ["dense", "keyword", "fused"]
    with pytest.raises(ValueError, match="mode must be one of dense, keyword, hybrid, got 'sparse'"):
        RetrievalMode.from_str("sparse")
    assert SearchSettings(fusion="rrf").fusion is Fusion.RRF and SearchSettings().fusion is Fusion.CONVEX
    with pytest.raises(ValueError, match="fusion must be one of rrf, convex, got 'max'"):
        SearchSettings(fusion="max")


def test_rrf_fusion_ranks_by_reciprocal_ranks(searcher):
    rrf_searcher = Searcher(searcher.stored, searcher.embedder, SearchSettings(fusion=Fusion.RRF))
    query = "hip flexors knee stretch"
    ranking = rrf_searcher.rank(query, searcher.embedder.encode([query])[0])
    expected = rrf([list(ranking.dense_rank), list(ranking.keyword_rank)], 60)
    assert ranking.scores == pytest.approx(expected)
