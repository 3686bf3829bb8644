"""The new-user pass's loose ends (issue 24), each through the app (AppTest) or the command line.

The whole "why", one way of counting documents, a time left said only once
steady, follow-up questions read with the previous subject, and bad link
parameters said rather than dropped. (A phone reaching every page is in
tests/test_browser_gaps.py: it needs a real browser's layout.)
"""

from __future__ import annotations

import json
import time

import pytest

import ingest.jobs
from index.embed.fake import FakeEmbedder
from index.store.reader import load
from ingest.documents import Status, list_documents
from ingest.jobs import JobState
from ingest.pipeline import Stage, build
from tests.test_app import app_env, built, documents_page, everything, new_app  # noqa: F401 (fixtures)
from ui.followup import carried, needs_subject
from ui.links import ignored_params
from ui.markdown import escape_markdown
from ui.progress import document_count


def test_the_why_is_shown_whole(app_env, tiny_corpus):  # noqa: F811
    (tiny_corpus / "blob.txt").write_bytes(bytes(range(256)) * 40)
    build(tiny_corpus, app_env, FakeEmbedder())
    [entry] = [e for e in list_documents(tiny_corpus, load(app_env)) if e.source == "blob.txt"]
    assert entry.status is Status.SKIPPED and len(entry.reason) > 8
    at = documents_page()
    assert f"{escape_markdown('blob.txt')}: {escape_markdown(entry.reason)}" in everything(at)


def test_files_and_records_are_counted_the_same_way_everywhere(app_env, tiny_corpus, capsys, monkeypatch):  # noqa: F811
    records = [{"_id": f"r{n}", "text": f"Record {n} is about knee pain number {n}."} for n in range(3)]
    (tiny_corpus / "notes.jsonl").write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    report = build(tiny_corpus, app_env, FakeEmbedder())
    said = document_count(report.files, report.documents)
    assert said == "4 documents (6 counting each .jsonl record)"
    at = new_app().run()
    assert f"Answers are quoted from {said}" in everything(at)
    at = documents_page()
    assert at.caption[0].value.startswith(said)


def test_the_command_line_says_1_document(tmp_path, monkeypatch, capsys, thread_counts_restored):
    from ingest.__main__ import main

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "one.txt").write_text("Knees bend.", encoding="utf-8")
    monkeypatch.setenv("KB_EMBEDDER", "fake")
    assert main(["--corpus", str(tmp_path / "corpus"), "--index", str(tmp_path / "idx")]) == 0
    assert "indexed 1 document as 1 passage " in capsys.readouterr().out


def test_a_fresh_estimate_is_not_said_as_a_time(built, monkeypatch):  # noqa: F811
    running = JobState(
        running=True,
        run=1,
        stage=Stage.EMBED,
        done=100,
        total=400,
        files_done=4,
        files_total=4,
        started=time.monotonic() - 10,
        stage_started=time.monotonic() - 10,
    )
    monkeypatch.setattr(ingest.jobs.BuildJob, "state", property(lambda self: running))
    at = documents_page()
    text = at.get("progress")[0].proto.text.replace("\\", "")
    assert "working out the time left" in text and "about" not in text


def test_a_follow_up_is_read_with_the_previous_subject_and_can_be_asked_alone(built):  # noqa: F811
    at = new_app().run()
    at.text_input(key="query").input("what is spinal fusion?").run()
    at.text_input(key="query").input("and how long is the recovery?").run()
    read_as = "and how long is the recovery? (spinal fusion)"
    assert escape_markdown(read_as) in everything(at)
    assert any(escape_markdown("Spinal fusion joins two vertebrae") in m.value for m in at.markdown)
    next(b for b in at.button if b.label == "Ask it on its own").click().run()
    assert escape_markdown(read_as) not in everything(at)


def test_follow_ups_are_told_from_questions_with_a_subject_of_their_own():
    assert needs_subject("and how long is the recovery?") and needs_subject("what causes it?")
    assert not needs_subject("what is kyphoplasty") and not needs_subject(
        "can fusion surgery wreck the discs next to it"
    )
    assert carried("what causes it?", "what is spondylolisthesis?") == "what causes it? (spondylolisthesis)"
    assert carried("what is kyphoplasty", "what is spinal fusion?") is None


def test_bad_link_parameters_are_said(built):  # noqa: F811
    at = new_app()
    at.query_params["k"] = "banana"
    at.query_params["doc"] = ["nope.txt", "fractures.txt"]
    at.run()
    assert escape_markdown("Ignored in the link: k=banana, doc=nope.txt.") in [i.value for i in at.info]
    assert at.multiselect(key="sources").value == ["fractures.txt"]


@pytest.mark.parametrize(
    ("k", "docs", "said"),
    [(["3"], ["a.txt"], []), (["0"], [], ["k=0 (a number from 1 to 20)"]), ([], ["b.txt"], ["doc=b.txt"])],
)
def test_which_link_parameters_are_ignored(k, docs, said):
    assert ignored_params(k, docs, {"a.txt"}, 20) == said
