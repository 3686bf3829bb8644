"""Did you mean: misspelt words corrected from the collection's vocabulary; clean questions unchanged."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from index.records import Verdict
from index.search.searcher import Searcher
from index.search.spelling import Speller
from index.store.reader import load
from index.store.vocabulary import VOCABULARY, count_words, read_vocabulary
from ingest.pipeline import build
from tests.helpers import REPO

VOCABULARY_COUNTS = {"vertebra": 3, "fractures": 5, "heal": 2, "kyphoplasty": 1, "flexors": 4, "who": 9, "how": 1}


@pytest.fixture(scope="module")
def bundled(tmp_path_factory) -> Searcher:
    from index.embed.fake import FakeEmbedder

    index_dir = tmp_path_factory.mktemp("bundled") / "index"
    build(REPO / "corpus", index_dir, FakeEmbedder())
    return Searcher(load(index_dir), FakeEmbedder())


def questions() -> list[str]:
    return [
        json.loads(line)["query"]
        for path in sorted((REPO / "corpus").glob("questions*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def test_misspelt_words_are_corrected_and_the_rest_kept_as_typed():
    speller = Speller(VOCABULARY_COUNTS)
    assert speller.suggest("Hwo do vertebrea FRACTRUES heal?") == "How do vertebra FRACTURES heal?"
    assert speller.suggest("kyfoplasty, B12x and 42") == "kyphoplasty, B12x and 42"  # codes and numbers alone


def test_known_words_stopwords_and_stems_are_not_corrected():
    speller = Speller(VOCABULARY_COUNTS, terms={"fractur"})
    assert speller.suggest("how do the fractured vertebra heal") is None  # "fractured" stems to a known term
    assert speller.suggest("what is a house") is None  # common English words are words, whatever the collection
    assert speller.suggest("zzzqx") is None  # nothing close
    assert Speller({}).suggest("hwo") is None


def test_a_typo_keeps_its_first_letter_or_swaps_the_first_two():
    speller = Speller({"groin": 5, "broke": 1, "ray": 9, "how": 1})
    assert speller.correct("brokn") == "broke"
    assert speller.correct("ohw") == "how"
    assert Speller({"groin": 5}).correct("brokn") is None
    assert speller.correct("xray") is None


def test_a_dropped_apostrophe_is_no_typo():
    assert Speller({"shouldn't": 1, "that’s": 2}).suggest("shouldnt thats") is None


def test_the_vocabulary_is_stored_with_the_version(bundled):
    folder = bundled.stored.path
    stored = read_vocabulary((folder / VOCABULARY).read_text(encoding="utf-8"))
    assert stored == count_words(p.text for p in bundled.passages)
    assert VOCABULARY in bundled.stored.manifest.files
    assert stored["vertebra"] >= 1 and "Vertebra" not in stored


def test_a_typo_gets_a_suggestion_in_the_json(bundled):
    data = bundled.search("hwo lnog dose a brokn vertebra tak to heel").to_json()
    assert data["suggestion"] == "how long dose a brokn vertebra take to heel"
    assert set(data) >= {"query", "answered", "verdict", "confidence", "hits", "suggestion", "corrected"}
    clean = bundled.search("how long does a broken vertebra take to heal").to_json()
    assert clean["suggestion"] is None and clean["corrected"] is False


# The bundled question sets hold people's own typos; each gets exactly this suggestion, every other question none.
TYPOS = {
    "where are my hip flexers even located, is it the groin?": "where are my hip flexors even located, is it the groin?",
    "hwo lnog dose a brokn vertebra tak to heel": "how long dose a brokn vertebra take to heel",
    "what is the glue stuff they put into a crushed vertabra": "what is the glue stuff they put into a crushed vertebra",
    "my lowr back pain is super intense and has lasted for weeks now, does that mean its something bad? im really "
    "scared": "my low back pain is super intense and has lasted for weeks now, does that mean its something bad? im "
    "really scared",
    "can a colapsed disc cause stenosis": "can a collapsed disc cause stenosis",
    "how far down should i bend in the hip hinge excercise": "how far down should i bend in the hip hinge exercise",
    "at what age does ankylosing spondilitis usually start": "at what age does ankylosing spondylitis usually start",
    "examples of inflamatory arthritis that affect the spine": "examples of inflammatory arthritis that affect the spine",
}


@pytest.mark.parametrize("question", questions())
def test_clean_questions_do_not_change(bundled, question):
    suggested = bundled.search(question, k=3)
    plain = bundled.search(question, k=3, suggest=False)
    assert suggested.suggestion == TYPOS.get(question)
    if not suggested.corrected:  # only a question with a typo, answered better when corrected, changes
        assert (suggested.query, suggested.verdict, suggested.hits) == (plain.query, plain.verdict, plain.hits)
    else:
        order = [Verdict.NOT_ANSWERED, Verdict.UNSURE, Verdict.ANSWERED]
        assert order.index(suggested.verdict) > order.index(plain.verdict)


def test_every_typo_of_the_question_sets_is_there():
    assert set(TYPOS) <= set(questions())


@pytest.mark.model
def test_the_misspelt_question_still_quotes_the_healing_sentence(tmp_path):
    from index.embed.registry import BundledModel

    build(REPO / "corpus", tmp_path / "index", BundledModel())
    result = subprocess.run(
        [sys.executable, "-m", "index", "query", "hwo lnog dose a brokn vertebra tak to heel", "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**__import__("os").environ, "KB_INDEX": str(tmp_path / "index")},
    )
    data = json.loads(result.stdout)
    assert data["suggestion"] and data["suggestion"] != data["query"]
    assert data["corrected"] and data["verdict"] == Verdict.ANSWERED.value
    assert "vertebral fractures take weeks to heal" in data["hits"][0]["answer"]["text"]
