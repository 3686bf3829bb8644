"""The Streamlit page driven by AppTest, over a tiny index and the fake embedder."""

from __future__ import annotations

import re
import threading
import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from index.display import NO_ANSWER
from index.embedding import register_embedder
from index.search import Searcher, SearchSettings
from index.store import current_version, load
from index.testing import FakeEmbedder
from ingest.pipeline import build
from tests.helpers import BREAKS, REPO, OtherModelEmbedder, break_index
from ui.markdown import escape_markdown

APP = str(REPO / "app.py")


@pytest.fixture
def app_env(tiny_corpus, tmp_path, monkeypatch, thread_counts_restored):
    """Environment for the app: the tiny corpus, an index folder, the fake embedder (by its registered name)."""
    monkeypatch.setenv("KB_EMBEDDER", "fake")
    monkeypatch.setenv("KB_CORPUS", str(tiny_corpus))
    monkeypatch.setenv("KB_INDEX", str(tmp_path / "idx"))
    st.cache_resource.clear()
    yield tmp_path / "idx"
    st.cache_resource.clear()


@pytest.fixture
def built(app_env, tiny_corpus):
    build(tiny_corpus, app_env, FakeEmbedder())
    return app_env


def ask(question: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30).run()
    return at.text_input(key="query").input(question).run()


def markdown_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_asking_shows_cited_passage_with_highlight(built):
    at = ask("how many weeks do vertebral fractures take to heal")
    assert not at.exception and not at.warning
    text = markdown_text(at)
    assert "**1.** fractures\\.txt\\, line 1" in text
    assert ":orange-background[Vertebral fractures take weeks to heal with rest and pain relievers\\.]" in text
    assert at.query_params["q"] == "how many weeks do vertebral fractures take to heal"


def test_no_answer_is_said_plainly_with_weak_matches_collapsed(built):
    # It shares "hip" with the corpus: there are weak matches, and only the threshold refuses them.
    question = "What is the capital of France, and does it have hip museums?"
    answer = Searcher(load(built), FakeEmbedder()).search(question)
    assert answer.hits and 0 < max(h.similarity for h in answer.hits) < SearchSettings().answer_threshold
    at = ask(question)
    assert at.warning[0].value == NO_ANSWER
    assert not at.expander[0].proto.expanded
    assert "weak matches" in at.expander[0].label
    assert "hips/flexors" in markdown_text(at).replace("\\", "")  # the weak matches are there, collapsed


def test_filter_by_source_limits_results(built):
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.sidebar.multiselect[0].select("hips/flexors.md").run()
    at.text_input(key="query").input("hip flexors knee vertebral fractures").run()
    citations = [m.value for m in at.markdown if re.match(r"\*\*\d+\.\*\*", m.value)]
    assert citations and all(escape_markdown("hips/flexors.md") in c for c in citations)


def test_query_in_url_is_answered_on_load(built):
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["q"] = "icing inflamed hip joint"
    at.run()
    assert at.text_input(key="query").value == "icing inflamed hip joint"
    assert "Icing an inflamed hip joint" in markdown_text(at)


def test_example_question_button_asks_it(built):
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.button[0].click().run()
    assert at.text_input(key="query").value == at.button[0].label
    assert any(m.value.startswith("**1.**") for m in at.markdown)


def test_upload_saves_file_and_rebuilds_index(built, tiny_corpus):
    before = current_version(built)
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.sidebar.file_uploader[0].set_value(
        ("../../knees.txt", b"Knee cartilage wears down with age and running.", "text/plain")
    ).run()
    add = next(b for b in at.sidebar.button if b.label == "Add to the knowledge base")
    add.click().run()
    assert (tiny_corpus / "uploads" / "knees.txt").read_bytes().startswith(b"Knee cartilage")
    assert not (tiny_corpus.parent / "knees.txt").exists()
    deadline = time.monotonic() + 30
    while current_version(built) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert current_version(built) != before
    at = ask("knee cartilage wears down with running")
    assert escape_markdown("uploads/knees.txt, line 1") in markdown_text(at)


class GatedEmbedder(FakeEmbedder):
    """The fake embedder, except that the background build waits at embedding until the test opens `gate`."""

    gate = threading.Event()

    def encode(self, texts, progress=None):
        if threading.current_thread().name == "kb-build" and not self.gate.wait(60):
            raise TimeoutError("the test never opened the gate")
        return super().encode(texts, progress)


def test_questions_during_a_rebuild_are_answered_from_the_old_index_then_the_new(built, tiny_corpus, monkeypatch):
    register_embedder("gated", lambda config: GatedEmbedder())
    monkeypatch.setenv("KB_EMBEDDER", "gated")
    GatedEmbedder.gate.clear()
    (tiny_corpus / "knees.txt").write_text("Knee cartilage wears down with age and running.", encoding="utf-8")
    (tiny_corpus / "hips" / "flexors.md").unlink()
    old_source, new_source = escape_markdown("hips/flexors.md, line"), escape_markdown("knees.txt, line")
    question = "hip flexors lift the knee; knee cartilage wears down with running"
    before = current_version(built)
    at = AppTest.from_file(APP, default_timeout=30).run()
    next(b for b in at.sidebar.button if b.label == "Rebuild from corpus folder").click().run()
    try:
        for _ in range(3):  # the build is held mid-embedding: every answer is the old index's, whole
            at = ask(question)
            assert not at.exception and not at.error
            assert "Answers come from the current index meanwhile" in at.get("progress")[0].proto.text
            assert old_source in markdown_text(at) and new_source not in markdown_text(at)
            assert current_version(built) == before
    finally:
        GatedEmbedder.gate.set()
    deadline = time.monotonic() + 30
    while current_version(built) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    at = ask(question)
    assert not at.exception and not at.error
    assert new_source in markdown_text(at) and old_source not in markdown_text(at)


def test_missing_index_shows_error_and_build_button(app_env):
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert "no index found" in at.error[0].value
    assert any(b.label == "Build the index now" for b in at.button)


def test_broken_index_shows_clear_error(built):
    vectors = current_version(built) / "vectors.faiss"
    vectors.write_bytes(b"garbage")
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert escape_markdown("vectors.faiss does not match its manifest") in at.error[0].value


@pytest.mark.parametrize("how", BREAKS)
def test_damaged_index_names_the_file_and_the_fix(built, how):
    broken = break_index(built, how)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    shown = at.error[0].value  # Markdown source: the message is escaped, it displays as written
    assert escape_markdown(broken) in shown and escape_markdown(f"python -m ingest --index {built}") in shown
    assert any(b.label == "Build the index now" for b in at.button)


@pytest.mark.parametrize("garbage", [b"\xd6\xff", b"../../etc\n"], ids=["not UTF-8", "outside"])
def test_garbage_in_current_shows_the_fix_not_a_traceback(built, garbage):
    """Issue 16 D4: the page says what is wrong and offers the rebuild, which repairs it."""
    (built / "CURRENT").write_bytes(garbage)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    shown = at.error[0].value
    assert escape_markdown("index pointer") in shown
    assert escape_markdown(f"python -m ingest --index {built}") in shown
    assert any(b.label == "Build the index now" for b in at.button)


def test_index_of_another_model_is_refused_with_the_fix(app_env, tiny_corpus):
    build(tiny_corpus, app_env, OtherModelEmbedder())
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert escape_markdown("was built with model 'test/other-model'") in at.error[0].value
    assert escape_markdown(f"python -m ingest --index {app_env}") in at.error[0].value


def test_build_button_repairs_a_damaged_index(built):
    break_index(built, "tampered")
    at = AppTest.from_file(APP, default_timeout=30).run()
    next(b for b in at.button if b.label == "Build the index now").click().run()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        at = ask("kyphoplasty balloon compressed vertebra")
        if not at.error:
            break
        time.sleep(0.3)
    assert not at.exception and not at.error
    assert "Kyphoplasty inflates a balloon" in markdown_text(at)


def test_document_markup_is_shown_literally(app_env, tiny_corpus):
    (tiny_corpus / "evil.md").write_text(
        "Hostile page <script>alert(1)</script> with [a link](javascript:alert(1)) and **bold** and $x$ and :red[red].",
        encoding="utf-8",
    )
    build(tiny_corpus, app_env, FakeEmbedder())
    at = ask("hostile page script link bold")
    text = markdown_text(at)
    assert escape_markdown("<script>alert(1)</script>") in text
    assert escape_markdown("[a link](javascript:alert(1))") in text
    assert "**bold**" not in text and ":red[red]" not in text


def test_quality_panel_scores_the_question_set(built, tiny_corpus):
    (tiny_corpus / "questions.jsonl").write_text(
        '{"query": "kyphoplasty balloon compressed vertebra", "answer": "Kyphoplasty inflates a balloon"}\n'
        '{"query": "What is the capital of France?", "answer": null}\n',
        encoding="utf-8",
    )
    at = AppTest.from_file(APP, default_timeout=30).run()
    next(b for b in at.sidebar.button if b.label.startswith("Measure quality")).click().run()
    text = markdown_text(at)
    assert "recall@1 **1.00**" in text and "MRR **1.00**" in text
    assert "refused 1/1 off-topic" in text
