"""The watched corpus: added, edited, renamed and deleted files each become one build, and a burst is one build.

Every test waits for the watcher's build event (`CorpusWatcher.events`),
never for a fixed time: the event is put on the queue when the build has
published, so what the index holds is checked right after it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from index.search.searcher import Searcher
from index.store.changes import IndexChange, diff_sources, last_change
from index.store.pointer import current_version, remove_old_versions
from index.store.reader import load
from index.store.version import SourceFile
from ingest.pipeline import build
from ingest.watch import CorpusWatcher, WatchSettings, build_now, is_temporary, watch_enabled
from tests.helpers import REPO

# Short waits keep the tests quick; what they wait for is the event, not the time.
FAST = WatchSettings(settle=0.3, stable=0.2, poll=0.1, busy_retry=0.2)
EVENT_TIMEOUT = 60  # the longest a build may take on a loaded two-core machine


class Counting:
    """A watcher's build that counts builds, and runs at most one at a time (it would say so)."""

    def __init__(self, corpus, index_dir, embedder) -> None:
        self.run = build_now(build, corpus, index_dir, embedder)
        self.running = threading.Lock()
        self.overlapped = False

    def __call__(self):
        if not self.running.acquire(blocking=False):
            self.overlapped = True
            raise AssertionError("two builds at once")
        try:
            return self.run()
        finally:
            self.running.release()


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "fractures.txt").write_text(
        "Vertebral fractures take weeks to heal with rest and pain relievers.", encoding="utf-8"
    )
    return folder


@pytest.fixture
def watched(corpus, tmp_path, fake_embedder):
    """A running watcher over `corpus`, its first (catch-up) build done."""
    builder = Counting(corpus, tmp_path / "index", fake_embedder)
    watcher = CorpusWatcher(corpus, builder, FAST).start()
    first = next_build(watcher)
    assert first.error is None and first.report.published
    yield watcher
    watcher.stop()
    assert not builder.overlapped


def next_build(watcher: CorpusWatcher):
    return watcher.events.get(timeout=EVENT_TIMEOUT)


def top_source(index_dir, embedder, question: str) -> str | None:
    answer = Searcher(load(index_dir), embedder).search(question, k=1)
    return answer.hits[0].passage.location.source if answer.hits else None


def test_added_edited_renamed_and_deleted_files_each_reach_the_index(watched, corpus, tmp_path, fake_embedder):
    index_dir = tmp_path / "index"
    (corpus / "knees.txt").write_text("Runner's knee pain comes from the kneecap rubbing.", encoding="utf-8")
    event = next_build(watched)
    assert event.report.change.added == ("knees.txt",)
    assert top_source(index_dir, fake_embedder, "kneecap runner knee pain") == "knees.txt"

    (corpus / "knees.txt").write_text("Knee braces steady a wobbly kneecap during sport.", encoding="utf-8")
    event = next_build(watched)
    assert event.report.change.changed == ("knees.txt",)
    assert "braces" in load(index_dir).passages[0].text + load(index_dir).passages[1].text

    fake_embedder.encoded = 0
    os.rename(corpus / "knees.txt", corpus / "braces.txt")
    event = next_build(watched)
    assert event.report.change.renamed == (("knees.txt", "braces.txt"),)
    assert event.report.change.summary() == "1 renamed"
    assert event.report.embedded == 0 and fake_embedder.encoded == 0  # every vector reused
    assert top_source(index_dir, fake_embedder, "knee braces kneecap sport") == "braces.txt"  # cited by its new name

    (corpus / "braces.txt").unlink()
    event = next_build(watched)
    assert event.report.change.removed == ("braces.txt",)
    assert {d.source for d in load(index_dir).documents} == {"fractures.txt"}
    assert last_change(index_dir, current_version(index_dir).name) == event.report.change


def test_a_burst_of_50_files_makes_one_build(watched, corpus):
    for n in range(50):
        (corpus / f"note-{n:02}.txt").write_text(f"Note {n} about stretching muscle number {n}.", encoding="utf-8")
    event = next_build(watched)
    assert len(event.report.change.added) == 50
    (corpus / "last.txt").write_text("One more note about posture.", encoding="utf-8")
    event = next_build(watched)  # the next build is the next change's: the burst made one
    assert event.number == 3 and event.report.change.added == ("last.txt",)


def test_editor_scratch_files_start_no_build(watched, corpus):
    for name in (".fractures.txt.swp", "fractures.txt~", "draft.tmp", "#notes.txt#", ".hidden.txt", "4913"):
        (corpus / name).write_text("scratch", encoding="utf-8")
    (corpus / "real.txt").write_text("Posture matters when lifting boxes.", encoding="utf-8")
    event = next_build(watched)
    assert event.paths == ("real.txt",)
    assert event.report.change.added == ("real.txt",)


def test_a_file_written_in_pieces_is_read_once_whole(watched, corpus, tmp_path):
    path = corpus / "long.txt"
    with open(path, "w", encoding="utf-8") as handle:
        for n in range(8):  # a slow copy: pauses shorter than the settle time
            handle.write(f"Part {n} says heat eases stiff muscles. ")
            handle.flush()
            time.sleep(FAST.settle / 3)
        handle.write("The end says ice calms a fresh injury.")
    event = next_build(watched)
    assert event.paths == ("long.txt",)
    stored = load(tmp_path / "index")
    text = stored.texts.text(next(row for row, d in enumerate(stored.documents) if d.source == "long.txt"))
    assert text.endswith("ice calms a fresh injury.")


def test_the_corpus_folder_vanishing_for_a_moment_empties_nothing(watched, corpus, tmp_path):
    away = tmp_path / "away"
    corpus.rename(away)
    (away / "knees.txt").write_text("Knee pain from running.", encoding="utf-8")
    away.rename(corpus)  # back, with a change made while it was gone
    event = next_build(watched)
    assert event.error is None
    assert {d.source for d in load(tmp_path / "index").documents} == {"fractures.txt", "knees.txt"}
    shutil.rmtree(corpus)  # gone altogether: nothing is built, the index keeps answering
    corpus.mkdir()
    (corpus / "fractures.txt").write_text("Fractures heal in weeks.", encoding="utf-8")
    event = next_build(watched)
    assert event.error is None
    assert {d.source for d in load(tmp_path / "index").documents} == {"fractures.txt"}


def test_renames_are_told_from_removals_by_content():
    before = {"a.txt": SourceFile(3, 1, "aaa"), "b.txt": SourceFile(3, 1, "bbb"), "c.txt": SourceFile(3, 1, "ccc")}
    after = {"z.txt": SourceFile(3, 2, "aaa"), "b.txt": SourceFile(4, 2, "BBB"), "d.txt": SourceFile(3, 1, "ddd")}
    assert diff_sources(before, after) == IndexChange(
        added=("d.txt",), changed=("b.txt",), removed=("c.txt",), renamed=(("a.txt", "z.txt"),)
    )
    assert diff_sources(before, after).summary() == "1 added, 1 changed, 1 removed, 1 renamed"


def test_the_change_log_outlives_old_versions(corpus, tmp_path, fake_embedder):
    index_dir = tmp_path / "index"
    build(corpus, index_dir, fake_embedder)
    remove_old_versions(index_dir, live="", keep=0)  # every version gone
    assert last_change(index_dir) is not None and last_change(index_dir).added == ("fractures.txt",)


def test_scratch_names_and_the_switch():
    assert is_temporary("a/.b.txt.swp") and is_temporary("x.txt~") and is_temporary(".git/index")
    assert not is_temporary("notes/plan.txt")
    assert watch_enabled({"KB_WATCH": "1"}) and not watch_enabled({})
    with pytest.raises(ValueError, match="KB_WATCH must be 1 or 0"):
        watch_enabled({"KB_WATCH": "sometimes"})


def test_the_command_line_watches_and_reports_each_build(corpus, tmp_path):
    """`python -m ingest --watch` prints one line per build; a change made while it runs is picked up."""
    env = {**os.environ, "KB_EMBEDDER": "fake", "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "ingest", "--watch", "--corpus", str(corpus), "--index", str(tmp_path / "index")]
    process = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()  # the catch-up build
        assert "1 added" in first, first
        (corpus / "knees.txt").write_text("Knee pain from running.", encoding="utf-8")
        second = process.stdout.readline()
        assert "1 added" in second and "1 embedded" in second, second
    finally:
        process.terminate()
        process.wait(timeout=30)
