"""Knowledge gaps: questions logged beside the index, grouped when near-identical, listed and exported for eval."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from index.__main__ import main
from index.config import Config
from index.embed.fake import FakeEmbedder
from index.gaps import LOG, Gap, LoggedQuestion, gaps, log_question, normalise, read_log, to_question_set
from index.records import Answer, Verdict
from index.serve.app import LocalBackend, create_app
from index.store.pointer import current_version, remove_old_versions
from ingest.pipeline import build
from tests.test_api import ready
from tests.test_app import app_env, built, new_app  # noqa: F401 (fixtures)

REFUSED = "quantum chromodynamics lattice gauge"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def index_dir(tiny_corpus, tmp_path):
    build(tiny_corpus, tmp_path / "idx", FakeEmbedder())
    return tmp_path / "idx"


@pytest.fixture
def fake_cli(monkeypatch, thread_counts_restored):
    monkeypatch.setenv("KB_EMBEDDER", "fake")
    for name in ("KB_LOG_QUESTIONS", "KB_LOG_DAYS"):
        monkeypatch.delenv(name, raising=False)


def entry(question: str, verdict: str, minutes: int, source: str | None = "a.txt") -> LoggedQuestion:
    return LoggedQuestion(question, (NOW - timedelta(minutes=minutes)).isoformat(), verdict, 0.1, source, "v-1")


def cli_lines(capsys, *args: str) -> list[str]:
    capsys.readouterr()
    assert main(list(args)) == 0
    return capsys.readouterr().out.splitlines()


def test_a_line_holds_the_question_time_verdict_confidence_top_source_and_version_only(tmp_path):
    answer = Answer("where is the moon?", Verdict.NOT_ANSWERED, ())
    assert log_question(tmp_path, answer, "v-abc", environ={}, now=NOW)
    [line] = (tmp_path / LOG).read_text(encoding="utf-8").splitlines()
    assert json.loads(line) == {
        "question": "where is the moon?",
        "time": "2026-05-01T12:00:00+00:00",
        "verdict": "not_answered",
        "confidence": 0.0,
        "top_source": None,
        "version": "v-abc",
    }


def test_logging_off_writes_nothing_and_old_lines_are_dropped(tmp_path):
    answer = {"query": "q", "verdict": "unsure", "confidence": 0.2, "hits": [{"source": "a.txt"}]}
    assert not log_question(tmp_path, answer, "v-1", environ={"KB_LOG_QUESTIONS": "0"})
    assert not (tmp_path / LOG).exists()
    log_question(tmp_path, answer, "v-1", environ={}, now=NOW - timedelta(days=100))
    log_question(tmp_path, answer, "v-1", environ={"KB_LOG_DAYS": "90"}, now=NOW)
    lines = (tmp_path / LOG).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["time"].startswith("2026-05-01")
    assert [e.top_source for e in read_log(tmp_path, days=90, now=NOW)] == ["a.txt"]


def test_near_identical_questions_are_one_gap_newest_first_and_an_answer_closes_one():
    entries = [
        entry("How long does recovery take?", "not_answered", 50),
        entry("how long does the recovery take", "unsure", 40),
        entry("How long does recovery take??", "not_answered", 30, "b.txt"),
        entry("Who wrote the hip chapter?", "not_answered", 20),
        entry("what is kyphoplasty", "unsure", 60),
        entry("What is kyphoplasty?", "answered", 10),
    ]
    assert gaps(entries) == [
        Gap("Who wrote the hip chapter?", 1, entries[3].time, "not_answered", "a.txt"),
        Gap("How long does recovery take??", 3, entries[2].time, "not_answered", "b.txt"),
    ]
    assert normalise("How long does it take to HEAL?") == "how long take heal"


def test_the_log_outlives_old_versions(index_dir):
    log_question(index_dir, Answer("q", Verdict.UNSURE, ()), "v-1", environ={})
    remove_old_versions(index_dir, live="", keep=0)  # every version gone
    assert read_log(index_dir, days=1)[0].question == "q"


def test_the_cli_logs_only_with_log_and_gaps_lists_and_exports_for_eval(index_dir, fake_cli, capsys, tmp_path):
    cli_lines(capsys, "query", REFUSED, "--index", str(index_dir))
    assert not (index_dir / LOG).exists()
    cli_lines(capsys, "query", REFUSED, "--log", "--index", str(index_dir))
    cli_lines(capsys, "query", REFUSED.upper() + "?", "--log", "--index", str(index_dir))
    cli_lines(capsys, "query", "spinal fusion bone grafts", "--log", "--index", str(index_dir))  # answered
    exported = tmp_path / "questions-gaps.jsonl"
    [line] = cli_lines(capsys, "gaps", "--json", "--index", str(index_dir), "--export", str(exported))
    gap = json.loads(line)
    assert set(gap) == {"question", "count", "last_asked", "verdict", "best_source"}
    assert (gap["question"], gap["count"], gap["verdict"]) == (REFUSED.upper() + "?", 2, "not_answered")
    assert json.loads(exported.read_text(encoding="utf-8"))["query"] == REFUSED.upper() + "?"
    scores = json.loads(cli_lines(capsys, "eval", "--questions", str(exported), "--json", "--index", str(index_dir))[0])
    assert scores["off_topic"] == 1 and scores["refused_off_topic"] == 1
    [text] = cli_lines(capsys, "gaps", "--days", "1", "--index", str(index_dir))
    assert "2x" in text and REFUSED.upper() in text


def test_the_api_logs_each_question_with_its_version(index_dir, monkeypatch):
    monkeypatch.delenv("KB_LOG_QUESTIONS", raising=False)
    backend = LocalBackend(Config(index=index_dir, embedder="fake"), poll=0.05)
    with TestClient(create_app(backend), base_url="http://localhost") as client:  # an allowed Host
        ready(client)  # the backend loads the index in the background
        response = client.post("/query", json={"query": REFUSED})
        assert response.status_code == 200
    [logged] = read_log(index_dir, days=1)
    assert (logged.question, logged.verdict, logged.version) == (
        REFUSED,
        "not_answered",
        current_version(index_dir).name,
    )


def test_a_refused_question_in_the_app_is_on_the_gaps_page_and_exports(built, monkeypatch):  # noqa: F811
    at = new_app().run()
    at.text_input(key="query").input(REFUSED).run()
    at.run()  # a rerun of the same question is not logged twice
    assert [e.question for e in read_log(built, days=1)] == [REFUSED]
    at.switch_page("app_pages/gaps.py").run()
    [table] = at.dataframe
    assert list(table.value["question"]) == [REFUSED] and list(table.value["asked"]) == [1]
    assert list(table.value["answer"]) == ["not in your documents"]
    assert [b.label for b in at.get("download_button")] == ["Export 1 question as a question set"]


def test_the_gaps_page_is_behind_the_admin_password(built, monkeypatch):  # noqa: F811
    monkeypatch.setenv("KB_ADMIN_PASSWORD", "sesame")
    log_question(built, Answer(REFUSED, Verdict.NOT_ANSWERED, ()), "v-1", environ={})
    at = new_app().run().switch_page("app_pages/gaps.py").run()
    assert not at.dataframe
    at.text_input[0].input("sesame")
    at.button[0].click().run()
    assert list(at.dataframe[0].value["question"]) == [REFUSED]


def test_the_export_reads_as_a_question_set(tmp_path):
    from index.evaluate import read_questions

    path = tmp_path / "q.jsonl"
    path.write_text(to_question_set([Gap("why?", 2, "2026-05-01T12:00:00+00:00", "unsure", None)]), encoding="utf-8")
    [question] = read_questions(path)
    assert (question.query, question.answer) == ("why?", None)
