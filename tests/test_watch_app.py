"""The app with KB_WATCH=1: a file dropped into the corpus folder answers, and the Ask page says what changed."""

from __future__ import annotations

import pytest

from index.config import Config
from tests.test_app import app_env, ask, everything, new_app  # noqa: F401 (app_env: a fixture)
from ui.markdown import escape_markdown
from ui.resources import get_corpus_watcher

EVENT_TIMEOUT = 60


@pytest.fixture
def watching(app_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("KB_WATCH", "1")
    new_app().run()  # the first page starts the watcher, which builds the missing index
    watcher = get_corpus_watcher(Config.resolve())
    first = watcher.events.get(timeout=EVENT_TIMEOUT)
    assert first.error is None and first.report.published
    yield watcher
    watcher.stop()


def test_a_file_dropped_in_answers_and_the_ask_page_says_it_was_added(watching, tiny_corpus):
    (tiny_corpus / "knees.txt").write_text("Runner's knee comes from the kneecap rubbing.", encoding="utf-8")
    event = watching.events.get(timeout=EVENT_TIMEOUT)
    assert event.report.change.added == ("knees.txt",)
    at = ask("kneecap runner knee")
    assert escape_markdown("Updated just now: 1 added.") in everything(at)
    assert "kneecap rubbing" in "\n".join(m.value for m in at.markdown)
    (tiny_corpus / "knees.txt").unlink()
    watching.events.get(timeout=EVENT_TIMEOUT)
    at = ask("kneecap runner knee")
    assert escape_markdown("Updated just now: 1 removed.") in everything(at)
    assert "kneecap rubbing" not in "\n".join(m.value for m in at.markdown)
