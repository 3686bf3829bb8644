"""Search over a tiny index with the fake embedder: fusion, answers, filters, context."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from index.embed.fake import FakeEmbedder
from index.records import Verdict
from index.retrievers.keyword import top_positive, top_rows
from index.search.fusion import dense_weight, rrf
from index.search.searcher import Searcher
from index.search.settings import Fusion, RetrievalMode, SearchSettings
from index.store.reader import load
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


def test_top_positive_is_top_rows_among_positive_scores_with_ties_to_the_lowest_row():
    rng = np.random.default_rng(0)
    scores = np.where(rng.random(5000) < 0.9, 0.0, rng.integers(1, 20, 5000)).astype(np.float32)
    positive = np.flatnonzero(scores > 0)
    for depth in (0, 1, 7, 100, len(positive), len(positive) + 50):
        expected = top_rows(scores, min(depth, len(positive)))
        assert top_positive(scores, depth).tolist() == expected.tolist()
    assert top_positive(np.zeros(10, dtype=np.float32), 5).tolist() == []
    tied = np.array([0, 3, 0, 3, 3, 1], dtype=np.float32)
    assert top_positive(tied, 2).tolist() == [1, 3]


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


def test_refusal_is_decided_by_the_best_similarity_against_the_threshold(searcher):
    """Not by the fake embedder's geometry: the same hits flip at exactly the threshold."""
    # Shares "hip" with the corpus, so its best similarity is above zero but below 0.40.
    question = "What is the capital of France, and does it have hip museums?"
    answer = searcher.search(question)
    best = max(h.similarity for h in answer.hits)
    assert answer.hits and 0 < best < searcher.settings.answer_threshold
    assert answer.verdict is Verdict.NOT_ANSWERED
    at_best = Searcher(searcher.stored, searcher.embedder, replace(searcher.settings, answer_threshold=best))
    above_best = Searcher(searcher.stored, searcher.embedder, replace(searcher.settings, answer_threshold=best + 1e-6))
    assert at_best.search(question).verdict is not Verdict.NOT_ANSWERED
    assert above_best.search(question).verdict is Verdict.NOT_ANSWERED
    assert at_best.search(question).hits == answer.hits  # the threshold decides the verdict, nothing else


def test_past_the_threshold_the_best_hits_confidence_decides_answered_or_unsure(searcher):
    answer = searcher.search("how long do vertebral fractures take to heal")
    confidence = answer.hits[0].confidence
    assert 0 < confidence < 1 and max(h.similarity for h in answer.hits) >= searcher.settings.answer_threshold

    def verdict(confident: float) -> Verdict:
        return (
            Searcher(searcher.stored, searcher.embedder, replace(searcher.settings, confident=confident))
            .search("how long do vertebral fractures take to heal")
            .verdict
        )

    assert verdict(confidence) is Verdict.ANSWERED and verdict(confidence + 1e-6) is Verdict.UNSURE


def test_how_many_hits_are_shown_never_changes_the_verdict(searcher):
    """The cosine floor looked only at the top k: a slider or ?k= turned an answer into a refusal."""
    question = "back pain"  # its first hit ranks on its words; another passage is closer in meaning
    ranking = searcher.rank(question, searcher.embedder.encode([question])[0])
    top = ranking.parts[ranking.rows[0]].passage_cosine
    best = max(part.passage_cosine for part in ranking.parts.values())
    assert top < best
    settings = replace(searcher.settings, answer_threshold=(top + best) / 2, confident=0.0)
    at_floor = Searcher(searcher.stored, searcher.embedder, settings)
    verdicts = {k: at_floor.search(question, k=k).verdict for k in (1, 2, 5, 20)}
    assert set(verdicts.values()) == {Verdict.ANSWERED}, verdicts


def test_a_hits_dense_score_mixes_its_passage_and_its_best_sentence(searcher):
    answer = searcher.search("how long do vertebral fractures take to heal", k=3)
    weight = searcher.settings.sentence_weight
    for hit in answer.hits:
        parts = hit.parts
        assert parts.passage_cosine == pytest.approx(hit.similarity)
        assert parts.dense == pytest.approx((1 - weight) * parts.passage_cosine + weight * parts.sentence_cosine)
        row = searcher.passages.index(hit.passage)
        vector = searcher.embedder.encode(["how long do vertebral fractures take to heal"])[0]
        stored = np.asarray(searcher.stored.sentences.of(row), dtype=np.float32) @ vector
        assert parts.sentence_cosine == pytest.approx(float(stored.max()), abs=1e-6)
        assert parts.fused == pytest.approx(hit.score)
    # A sentence that matches can lift its passage above one whose whole text matches a little better.
    assert answer.hits[0].parts.sentence_cosine >= answer.hits[0].parts.passage_cosine


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


def test_a_filtered_search_cites_the_chosen_document_not_a_copy_elsewhere(searcher, tiny_corpus):
    """The fusion paragraph is in copy.txt (read first, so its first place) and fractures.txt."""
    answer = searcher.search("spinal fusion bone grafts screws", k=5, sources=frozenset({"fractures.txt"}))
    hit = next(h for h in answer.hits if h.passage.text.startswith("Spinal fusion"))
    assert [loc.source for loc in hit.passage.locations] == ["fractures.txt", "copy.txt"]
    text = (tiny_corpus / "fractures.txt").read_text(encoding="utf-8")
    assert text[hit.passage.location.start : hit.passage.location.end] == hit.passage.text
    assert text[hit.answer.start : hit.answer.end] == hit.answer.text
    unfiltered = next(
        h for h in searcher.search("spinal fusion bone grafts screws").hits if h.passage.id == hit.passage.id
    )
    assert unfiltered.passage.location.source == "copy.txt"


def test_empty_query_returns_nothing(searcher):
    answer = searcher.search("   \n ")
    assert answer.hits == () and not answer.answered


def test_context_returns_neighbours_in_document_order(searcher):
    answer = searcher.search("icing inflamed hip joint", k=1)
    neighbours = searcher.context(answer.hits[0].passage.location)
    assert [n.is_hit for n in neighbours] == [False, True]
    assert neighbours[0].text.startswith("The hip flexors lift the knee")  # under the heading, not the heading
    assert neighbours[0].location.section == "Hip flexors"


def test_settings_validate():
    with pytest.raises(ValueError, match="candidates must be at least 1, got 0"):
        SearchSettings(candidates=0)


def test_a_question_costs_one_model_call_and_its_sentences_come_from_the_index(tmp_path, fake_embedder):
    build(REPO / "corpus", tmp_path / "idx", fake_embedder)
    stored = load(tmp_path / "idx")
    assert stored.manifest.sentences == len(stored.sentences.vectors) > len(stored.passages)
    searcher = Searcher(stored, fake_embedder)
    questions = [
        json.loads(line)["query"]
        for line in (REPO / "corpus" / "questions.jsonl").read_text().splitlines()
        if line.strip()
    ]
    fake_embedder.encoded = 0
    answers = [searcher.search(q, k=5) for q in questions]
    assert fake_embedder.encoded == len(questions)  # only the questions were embedded
    choices = 0
    for question, answer in zip(questions, answers):
        vector = FakeEmbedder().encode([question])[0]
        for hit in answer.hits:
            row = searcher.passages.index(hit.passage)
            spans, scores = searcher.sentence_scores(question, vector, row)
            fresh = FakeEmbedder().encode([hit.passage.text[s:e] for s, e in spans]) @ vector
            np.testing.assert_allclose(np.asarray(stored.sentences.of(row), np.float32) @ vector, fresh, atol=2e-3)
            best = spans[int(np.argmax(scores))]
            start, end = hit.answer_within(hit.passage.location.start)
            assert start <= best[0] and best[1] <= end  # the highlight holds the best candidate
            choices += len(spans) > 1
    assert choices > 100  # most hits had a real choice of sentence


def test_a_neighbour_within_the_window_is_highlighted_with_the_best_sentence(tmp_path, fake_embedder):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text(
        "Gardens need water in summer. Roses bloom in June and July. Tulips bloom in April.", encoding="utf-8"
    )
    build(corpus, tmp_path / "idx", fake_embedder)
    stored = load(tmp_path / "idx")
    question = "when do roses and tulips bloom"
    narrow = Searcher(stored, fake_embedder, SearchSettings(window=0.0)).search(question, k=1)
    wide = Searcher(stored, fake_embedder, SearchSettings(window=1.0)).search(question, k=1)
    assert narrow.hits[0].answer.text in ("Roses bloom in June and July.", "Tulips bloom in April.")
    assert wide.hits[0].answer.text == "Roses bloom in June and July. Tulips bloom in April."


def test_a_sentence_that_asks_is_not_chosen_as_the_answer_when_another_does(tmp_path, fake_embedder):
    corpus = tmp_path / "c"
    corpus.mkdir()
    # The fake embedder gives both sentences the same vector: only the penalty tells them apart.
    (corpus / "a.txt").write_text("Do tulips bloom in April? Tulips do bloom in April.", encoding="utf-8")
    build(corpus, tmp_path / "idx", fake_embedder)
    stored = load(tmp_path / "idx")

    def answer(penalty: float) -> str:
        settings = SearchSettings(window=0.0, question_penalty=penalty)
        return Searcher(stored, fake_embedder, settings).search("do tulips bloom in April", k=1).hits[0].answer.text

    assert answer(0.0).startswith("Do tulips bloom in April?")  # a tie: both sentences, the question first
    assert answer(SearchSettings().question_penalty) == "Tulips do bloom in April."


def test_adaptive_fusion_trusts_a_strong_dense_match_more_within_bounds():
    settings = SearchSettings()
    assert dense_weight(settings, 0.5) == pytest.approx(settings.dense_weight)
    assert dense_weight(settings, 0.8) > dense_weight(settings, 0.5) > dense_weight(settings, 0.2)
    assert 0.3 <= dense_weight(settings, -5) and dense_weight(settings, 5) <= 0.95
    assert dense_weight(SearchSettings(dense_weight_slope=0.0), 0.9) == settings.dense_weight


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


class CountingEmbedder(FakeEmbedder):
    """The fake embedder, counting the texts it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded: list[str] = []

    def encode(self, texts, progress=None):
        self.embedded += list(texts)
        return super().encode(texts, progress)


def test_a_repeated_question_is_answered_from_the_cache(tiny_corpus, tmp_path):
    embedder = CountingEmbedder()
    build(tiny_corpus, tmp_path / "idx", embedder)
    searcher = Searcher(load(tmp_path / "idx"), embedder)
    embedder.embedded.clear()
    first = searcher.search("how many weeks do vertebral fractures take to heal", k=3)
    again = searcher.search("  how many weeks do vertebral fractures take to heal ", k=3)
    assert again is first  # the same cleaned question and options: the kept answer
    assert embedder.embedded == ["how many weeks do vertebral fractures take to heal"]
    other_k = searcher.search("how many weeks do vertebral fractures take to heal", k=1)
    assert len(other_k.hits) == 1 and len(embedder.embedded) == 2  # other options: answered afresh


def test_the_cache_keeps_the_latest_answers_only(tiny_corpus, tmp_path):
    embedder = CountingEmbedder()
    build(tiny_corpus, tmp_path / "idx", embedder)
    searcher = Searcher(load(tmp_path / "idx"), embedder, answers_kept=2)
    for question in ("hip flexor stretch", "vertebral fracture healing", "sciatica", "hip flexor stretch"):
        searcher.search(question, suggest=False)
    assert searcher.search("sciatica", suggest=False) is searcher.search("sciatica", suggest=False)
    # The first question fell out when the third came in, so it was embedded twice.
    assert embedder.embedded[-4:] == [
        "hip flexor stretch",
        "vertebral fracture healing",
        "sciatica",
        "hip flexor stretch",
    ]


def test_a_new_version_is_not_answered_from_the_old_versions_cache(tiny_corpus, tmp_path, fake_embedder):
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    old = Searcher(load(tmp_path / "idx"), fake_embedder)
    question = "how many weeks do vertebral fractures take to heal"
    assert old.search(question).hits[0].passage.location.source == "fractures.txt"
    (tiny_corpus / "fractures.txt").unlink()
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    new = Searcher(load(tmp_path / "idx"), fake_embedder)
    assert all(hit.passage.location.source != "fractures.txt" for hit in new.search(question).hits)
    assert old.search(question).hits[0].passage.location.source == "fractures.txt"  # the old version's own answer


def test_a_searcher_can_keep_no_answers(tiny_corpus, tmp_path):
    embedder = CountingEmbedder()
    build(tiny_corpus, tmp_path / "idx", embedder)
    searcher = Searcher(load(tmp_path / "idx"), embedder, answers_kept=0)
    embedder.embedded.clear()
    assert searcher.search("sciatica", suggest=False) == searcher.search("sciatica", suggest=False)
    assert embedder.embedded == ["sciatica", "sciatica"]
