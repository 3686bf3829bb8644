"""Add clicked in a second browser session while a rebuild runs (issue 23, "not re-tried"): both files end up indexed.

The build is held inside its embedding step by a gated fake embedder, so the
second session's Add lands while the first session's rebuild is running.
"""

from __future__ import annotations

import threading

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from index.embed.fake import FakeEmbedder
from index.embed.registry import register_embedder
from index.store.reader import load
from ingest.pipeline import build
from tests.helpers import REPO, wait_for
from ui.markdown import escape_markdown
from ui.status import REBUILDING_NOTE

APP = str(REPO / "app.py")


class GatedEmbedder(FakeEmbedder):
    """The fake embedder, held at the gate while it embeds the first session's file."""

    entered = threading.Event()
    gate = threading.Event()

    def encode(self, texts, progress=None):
        if any("Wombat" in text for text in texts):
            GatedEmbedder.entered.set()
            GatedEmbedder.gate.wait(60)
        return super().encode(texts, progress)


@pytest.fixture
def app(tiny_corpus, tmp_path, monkeypatch, thread_counts_restored):
    build(tiny_corpus, tmp_path / "idx", FakeEmbedder())
    register_embedder("gated", lambda config: GatedEmbedder())
    GatedEmbedder.entered.clear()
    GatedEmbedder.gate.clear()
    monkeypatch.setenv("KB_EMBEDDER", "gated")
    monkeypatch.setenv("KB_CORPUS", str(tiny_corpus))
    monkeypatch.setenv("KB_INDEX", str(tmp_path / "idx"))
    st.cache_resource.clear()
    yield lambda: AppTest.from_file(APP, default_timeout=60).run().switch_page("app_pages/documents.py").run()
    GatedEmbedder.gate.set()
    st.cache_resource.clear()


def add(at: AppTest, name: str, text: str) -> AppTest:
    at.get("file_uploader")[0].set_value((name, text.encode(), "text/plain")).run()
    return next(b for b in at.button if b.label == "Add to the knowledge base").click().run()


def test_add_in_a_second_session_during_a_rebuild_is_indexed_after_it(app, tmp_path):
    first = add(app(), "wombat.txt", "Wombat burrows are cube shaped.")
    assert not first.exception
    assert GatedEmbedder.entered.wait(60)  # the first session's rebuild is running, held in its embedding
    second = add(app(), "koala.txt", "Koala fingerprints look like human ones.")
    assert not second.exception
    toasts = [t.value for t in second.toast]
    assert escape_markdown(REBUILDING_NOTE) in toasts, toasts
    GatedEmbedder.gate.set()
    sources = wait_for(
        lambda: {"uploads/wombat.txt", "uploads/koala.txt"} <= load_sources(tmp_path / "idx"),
        what="both uploads in the index",
        timeout=60,
    )
    assert sources


def load_sources(index_dir) -> set[str]:
    return {d.source for d in load(index_dir).documents}
