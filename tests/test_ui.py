"""The app's wording and rules without a browser: what the answer box quotes, progress, access, errors."""

from __future__ import annotations

import time

import pytest

from index.errors import IndexDamaged, IndexNotFound
from index.records import Answer, Hit, Location, Passage, Skipped, Span, Verdict
from ingest.jobs import JobState
from ingest.pipeline import BuildReport, Stage
from ingest.uploads import Outcome
from ui.access import Access, PasswordGuesses, TooManyGuesses
from ui.answer import LIKELY, STRONG, quoted_hits, sureness
from ui.errors import index_problem, redact
from ui.progress import Change, message, plural, progress_text


def hit(rank: int, source: str, sentence: str, confidence: float) -> Hit:
    location = Location(source, source, 0, len(sentence), 1)
    return Hit(
        Passage(f"p{rank}", sentence, (location,)),
        rank,
        1.0 / rank,
        0.5,
        Span(0, len(sentence), sentence),
        confidence=confidence,
    )


def test_the_box_quotes_the_best_sentence_and_a_confident_second_source():
    hits = (
        hit(1, "a.txt", "Fractures heal in weeks.", 0.9),
        hit(2, "a.txt", "Rest helps fractures heal.", 0.9),  # same document: not a second source
        hit(3, "b.txt", "fractures heal in weeks.", 0.9),  # the same words: nothing new
        hit(4, "c.txt", "Pain relievers help meanwhile.", 0.8),
        hit(5, "d.txt", "Casts are rare for the spine.", 0.9),  # a third quote is one too many
    )
    answer = Answer("q", Verdict.ANSWERED, hits)
    assert [h.rank for h in quoted_hits(answer)] == [1, 4]
    weak_second = Answer("q", Verdict.ANSWERED, (hits[0], hit(2, "b.txt", "Other words.", 0.2)))
    assert [h.rank for h in quoted_hits(weak_second)] == [1]
    assert [h.rank for h in quoted_hits(Answer("q", Verdict.UNSURE, hits))] == [1]
    assert quoted_hits(Answer("q", Verdict.NOT_ANSWERED, hits)) == []


def test_how_sure_in_words():
    assert sureness(Answer("q", Verdict.ANSWERED, (hit(1, "a.txt", "Yes.", 0.9),))) == STRONG
    assert sureness(Answer("q", Verdict.ANSWERED, (hit(1, "a.txt", "Yes.", 0.3),))) == LIKELY
    assert sureness(Answer("q", Verdict.UNSURE, ())) == "Closest passages; these may not answer"
    assert sureness(Answer("q", Verdict.NOT_ANSWERED, ())) == "No passage in the collection answers this."


def test_plural_is_plain():
    assert plural(1, "document") == "1 document" and plural(2, "document") == "2 documents"
    assert plural(1200, "file") == "1,200 files"


def test_progress_names_the_stage_counts_rate_and_time_left(stopped_clock):
    now = stopped_clock
    starting = JobState(running=True, stage=Stage.READ, total=0, stage_started=now)
    assert progress_text(starting).startswith("Looking for new and changed documents")  # not "0 of 0"
    reading = JobState(
        running=True, stage=Stage.READ, done=2, total=8, files_done=2, files_total=8, stage_started=now - 4
    )
    assert progress_text(reading).startswith("Reading documents: 2 of 8 files · 0.5 files a second · about 12 s left.")
    embedding = JobState(
        running=True, stage=Stage.EMBED, done=100, total=400, files_done=8, files_total=8, stage_started=now - 10
    )
    text = progress_text(embedding)
    assert "Read 8 of 8 files. Learning the new text: 100 of 400 passages and sentences · 10.0 a second" in text
    assert "about 30 s left" in text and text.endswith("Answers come from the current index meanwhile.")


def report(published=True, skipped=()) -> BuildReport:
    return BuildReport(4, 10, 1, 9, tuple(skipped), 0.5, published, None)


def test_a_skipped_upload_is_said_to_be_skipped_never_added():
    change = Change(2, saved=(("uploads/a.txt", Outcome.ADDED), ("uploads/b.txt", Outcome.REPLACED)))
    done = JobState(running=False, run=2, report=report(skipped=[Skipped("uploads/a.txt", "binary file, not text")]))
    said = message(change, done)
    assert said.toasts[0].startswith("Skipped uploads/a.txt: binary file, not text.")
    assert said.toasts[1] == "Replaced uploads/b.txt"
    assert said.level == "warning" and "1 file could not be read" in said.banner


def test_nothing_changed_and_failures_are_said():
    nothing = message(Change(3, rebuild=True), JobState(running=False, run=3, report=report(published=False)))
    assert nothing.banner == "Nothing changed: the index already matches the documents folder."
    failed = message(Change(4, rebuild=True), JobState(running=False, run=4, error="disk full at /srv/kb/data/index"))
    assert failed.level == "error" and "/srv" not in failed.banner and "previous index" in failed.banner


def test_access_from_the_environment_and_secrets():
    assert Access.resolve({}) == Access()
    assert Access.resolve({"KB_READ_ONLY": "1"}).read_only
    assert Access.resolve({}, {"admin_password": "s3cret"}).password == "s3cret"
    assert Access.resolve({"KB_ADMIN_PASSWORD": "env"}, {"admin_password": "s3cret"}).password == "env"
    assert Access.resolve({"KB_UPLOAD_QUOTA_MB": "2"}).upload_quota == 2 * 2**20
    assert (
        Access(password="a b").unlocks("a b") and not Access(password="a b").unlocks("a") and not Access().unlocks("")
    )
    with pytest.raises(ValueError, match="KB_READ_ONLY must be 1 or 0"):
        Access.resolve({"KB_READ_ONLY": "maybe"})
    with pytest.raises(ValueError, match="KB_UPLOAD_QUOTA_MB must be a number of megabytes"):
        Access.resolve({"KB_UPLOAD_QUOTA_MB": "lots"})


def test_errors_lose_server_paths_and_command_lines():
    damaged = IndexDamaged(
        "index file /srv/kb/data/index/v-1/vectors.faiss does not match its manifest",
        "rebuild it with: python -m ingest --index /srv/kb/data/index",
    )
    problem, fix = index_problem(damaged, can_rebuild=False)
    assert problem == "The index is damaged: index file vectors.faiss does not match its manifest."
    assert fix == "Ask whoever runs this knowledge base to rebuild the index."
    assert (
        index_problem(IndexNotFound("no index found in /x", "build one"), True)[1] == "Build it with the button below."
    )
    assert redact("[Errno 28] No space left on device: '/srv/kb/data/index/.v-2/passages.jsonl'") == (
        "[Errno 28] No space left on device: 'passages.jsonl'"
    )


@pytest.mark.parametrize(
    ("given", "runs"),
    [
        ([], ["APP"]),
        (["--server.port", "8502"], ["APP", "--server.port", "8502"]),
        (["other.py", "--server.port", "8502"], ["other.py", "--server.port", "8502"]),
    ],
)
def test_kb_app_runs_this_projects_app_unless_given_a_script(monkeypatch, given, runs):
    from streamlit.web import cli

    from ui import serve

    called = []
    monkeypatch.setattr(cli, "main", lambda args, prog_name: called.append(args))
    monkeypatch.setattr(serve, "allow_long_requests", lambda: None)
    serve.main(given)
    assert serve.APP.is_file()
    assert called == [["run", *(str(serve.APP) if a == "APP" else a for a in runs)]]


def test_wrong_passwords_are_counted_for_the_whole_server():
    """Guesses from many threads (sessions) at once: only `allowed` are tried, then everyone waits out the window."""
    import threading

    now = [1000.0]
    guesses = PasswordGuesses(allowed=3, window=60, clock=lambda: now[0])
    access = Access(password="open sesame")
    start = threading.Barrier(20)
    tried: list[bool] = []
    refused: list[float] = []

    def guess() -> None:
        start.wait()
        try:
            tried.append(guesses.check(access, "wrong"))
        except TooManyGuesses as exc:
            refused.append(exc.retry_after)

    threads = [threading.Thread(target=guess) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tried == [False] * 3 and refused == [60.0] * 17
    with pytest.raises(TooManyGuesses):  # the right password too: it would be one more guess
        guesses.check(access, "open sesame")
    now[0] += 30
    with pytest.raises(TooManyGuesses) as waiting:
        guesses.check(access, "wrong")
    assert waiting.value.retry_after == 30
    now[0] += 30
    assert guesses.check(access, "open sesame")  # the window has passed
    assert not guesses.check(access, "wrong")


def test_the_time_left_is_smoothed_and_said_only_once_steady():
    from ui.progress import TimeLeft

    estimate = TimeLeft()
    stage = (1, Stage.EMBED)
    # A build that takes about 90 s: the first raw estimates jump (small files first, a slow first batch).
    raws = [180, 40, 150, 95, 88, 84, 80, 76, 73, 70, 66]
    said = [estimate.update(stage, raw, now=float(second)) for second, raw in enumerate(raws)]
    assert said[:5] == [None] * 5  # not steady: no time said
    steady = [s for s in said if s is not None]
    assert steady and all(60 <= s <= 100 for s in steady)
    assert all(abs(a - b) < 10 for a, b in zip(steady, steady[1:]))  # no jump between neighbours
    assert estimate.update((1, Stage.PUBLISH), 5, now=20.0) is None  # a new stage starts over
    embedding = JobState(
        running=True,
        stage=Stage.EMBED,
        done=100,
        total=400,
        files_done=8,
        files_total=8,
        stage_started=time.monotonic() - 10,
    )
    assert "working out the time left" in progress_text(embedding, TimeLeft())
    assert "about" not in progress_text(embedding, TimeLeft())
