"""Answer feedback: votes stored beside the index, scored by `python -m index eval --feedback`, from the app and the API."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from index.__main__ import main
from index.config import Config
from index.embed.fake import FakeEmbedder
from index.feedback import FEEDBACK, QuotedPassage, Thumb, Vote, judgments, read_votes, record_vote
from index.search.searcher import Searcher
from index.serve.app import LocalBackend, create_app
from index.store.pointer import current_version
from index.store.reader import load
from ingest.pipeline import build
from tests.test_api import ready
from tests.test_app import app_env, built, new_app  # noqa: F401 (fixtures)
from ui.feedback import quoted

QUESTION = "spinal fusion bone grafts"


@pytest.fixture
def index_dir(tiny_corpus, tmp_path):
    build(tiny_corpus, tmp_path / "idx", FakeEmbedder())
    return tmp_path / "idx"


def top_passage(index_dir, question: str = QUESTION) -> QuotedPassage:
    answer = Searcher(load(index_dir), FakeEmbedder()).search(question, k=3)
    return quoted(answer.hits[0].passage)


def feedback_scores(capsys, index_dir) -> dict:
    capsys.readouterr()
    assert main(["eval", "--feedback", "--json", "--index", str(index_dir)]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def fake_cli(monkeypatch, thread_counts_restored):
    monkeypatch.setenv("KB_EMBEDDER", "fake")


def test_a_thumbs_up_passage_is_relevant_and_a_thumbs_down_alone_only_a_miss():
    a, b = QuotedPassage("p1", "a.txt", 0, 10), QuotedPassage("p2", "b.txt", 5, 20)
    votes = [
        Vote("q1", Thumb.UP, a, None, "v-1"),
        Vote("q2", Thumb.DOWN, a, None, "v-1"),
        Vote("q3", Thumb.DOWN, a, b, "v-1"),  # "the answer is in b"
    ]
    assert [(j.question, j.relevant, j.up, j.down) for j in judgments(votes)] == [
        ("q1", (a,), 1, 0),
        ("q2", (), 0, 1),
        ("q3", (b,), 0, 1),
    ]
    assert a.matches("other-id", [b]) is False and a.matches("p1", [])


def test_eval_feedback_scores_the_current_index_on_the_votes(index_dir, fake_cli, capsys):
    record_vote(index_dir, Vote(QUESTION, Thumb.UP, top_passage(index_dir), None, "v-1"))
    record_vote(index_dir, Vote("who wrote this", Thumb.DOWN, None, None, "v-1"))
    scores = feedback_scores(capsys, index_dir)
    assert (scores["votes"], scores["up"], scores["down"], scores["judged"], scores["misses"]) == (2, 1, 1, 1, 1)
    assert scores["recall_at_1"] == 1.0


def test_eval_feedback_without_votes_says_how_to_get_some(index_dir, fake_cli, capsys):
    assert main(["eval", "--feedback", "--index", str(index_dir)]) == 1
    assert "no votes" in capsys.readouterr().err


def test_post_feedback_stores_the_vote_with_the_serving_version(index_dir, monkeypatch):
    passage = top_passage(index_dir)
    backend = LocalBackend(Config(index=index_dir, embedder="fake"), poll=0.05)
    with TestClient(create_app(backend), base_url="http://localhost") as client:  # an allowed Host
        body = {"query": QUESTION, "vote": "up", "passage": vars(passage)}
        ready(client)  # the backend loads the index in the background
        response = client.post("/feedback", json=body)
        assert response.status_code == 200, response.text
        assert response.json() == {"recorded": True, "version": current_version(index_dir).name}
        bad = client.post("/feedback", json={"query": QUESTION, "vote": "sideways"})
        assert bad.status_code == 422 and "up, down" in bad.json()["detail"]
        unknown = client.post("/feedback", json={**body, "passage": {**vars(passage), "source": "nope.txt"}})
        assert unknown.status_code == 422 and "nope.txt" in unknown.json()["detail"]
    [vote] = read_votes(index_dir / FEEDBACK)
    assert (vote.question, vote.vote, vote.passage, vote.version) == (
        QUESTION,
        Thumb.UP,
        passage,
        current_version(index_dir).name,
    )


def test_a_thumbs_up_in_the_app_is_stored_and_scored_on_the_documents_page(built, capsys):  # noqa: F811
    at = new_app().run()
    at.text_input(key="query").input(QUESTION).run()
    at.feedback[0].set_value(1).run()
    [vote] = read_votes(built / FEEDBACK)
    assert vote.vote is Thumb.UP and vote.passage == top_passage(built)
    at.switch_page("app_pages/documents.py").run()
    panel = next(e for e in at.expander if e.label == "How well it answers the questions people voted on")
    text = "\n".join(m.value for m in panel.markdown)
    assert "1 vote (1 👍, 0 👎) on 1 question" in text and "came first for **100%** of 1 question" in text


def test_the_answer_is_in_names_a_passage_of_a_chosen_document(built):  # noqa: F811
    at = new_app().run()
    at.text_input(key="query").input("knee braces for runners").run()  # not in the tiny corpus
    next(box for box in at.selectbox if box.label == "Document").select("hips/flexors.md").run()
    passages = next(box for box in at.selectbox if box.label == "Passage")
    chosen = passages.options[0]
    passages.select_index(0).run()
    next(b for b in at.button if b.label == "Record").click().run()
    [vote] = read_votes(built / FEEDBACK)
    assert vote.answer_in is not None and vote.answer_in.source == "hips/flexors.md"
    assert chosen.startswith("line ")
