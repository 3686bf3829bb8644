"""Readers during rebuilds, and two rebuilds at once.

Rebuilds run in other processes (`python -m tests.crash_driver`, the fake
embedder slowed down) and switch the corpus between two contents whose
passages are told apart by their words, while threads here load the index
and ask questions without pause. Every answer must come whole from one
version; no reader may ever see an error. Two builds of one index folder at
the same moment: one runs, the other is refused with a message saying who
holds the index and what to do, and the index stays intact.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from index.embed.fake import FakeEmbedder
from index.search.searcher import Searcher
from index.store.reader import load
from ingest.pipeline import build
from tests.helpers import REPO, TINY_DOCS

pytestmark = pytest.mark.slow

# Corpus B shares no passage with corpus A (TINY_DOCS): every word differs.
OTHER_DOCS = {
    "knees.txt": "Knee cartilage wears down with age and long-distance running.\n\nCycling spares the knees.",
    "ankles.md": "# Ankles\n\nAn ankle sprain heals faster with ice, rest and early gentle movement.",
    "wrists.txt": "Wrist splints ease carpal tunnel symptoms at night.",
}
QUESTIONS = ["vertebral fractures heal", "knee cartilage running", "ankle sprain ice", "hip flexors stretch", "wrist"]


def write_corpus(corpus: Path, docs: dict[str, str]) -> None:
    shutil.rmtree(corpus, ignore_errors=True)
    for name, text in docs.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text, encoding="utf-8")


def passage_ids(docs: dict[str, str], tmp: Path) -> frozenset[str]:
    write_corpus(tmp / "corpus", docs)
    build(tmp / "corpus", tmp / "index", FakeEmbedder())
    return frozenset(p.id for p in load(tmp / "index").passages)


def driver(corpus: Path, index_dir: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash_driver", str(corpus), str(index_dir), *options],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_questions_during_rebuilds_come_whole_from_one_version(tmp_path):
    ids = {"A": passage_ids(TINY_DOCS, tmp_path / "a"), "B": passage_ids(OTHER_DOCS, tmp_path / "b")}
    assert not ids["A"] & ids["B"]
    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus, TINY_DOCS)
    build(corpus, index_dir, FakeEmbedder())

    stop = threading.Event()
    seen: list[tuple[str, int]] = []  # (version content, loads)
    errors: list[BaseException] = []

    def read() -> None:
        embedder = FakeEmbedder()
        while not stop.is_set():
            try:
                stored = load(index_dir, model=embedder.name)
                held = frozenset(p.id for p in stored.passages)
                (content,) = [name for name, known in ids.items() if known == held]  # one whole version
                searcher = Searcher(stored, embedder)
                for question in QUESTIONS:
                    answer = searcher.search(question, k=5)
                    assert {hit.passage.id for hit in answer.hits} <= ids[content]
                seen.append((content, len(stored.dense)))
            except BaseException as exc:
                errors.append(exc)
                return

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        for docs in (OTHER_DOCS, TINY_DOCS, OTHER_DOCS):  # the last two publishes delete versions too
            write_corpus(corpus, docs)
            child = driver(corpus, index_dir, "--embed-seconds", "0.3", "--jitter-ms", "5")
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0 and "DONE published=True" in out, err
    finally:
        stop.set()
        for thread in readers:
            thread.join(timeout=60)
    assert not errors, repr(errors[0])
    contents = [content for content, _ in seen]
    assert "A" in contents and "B" in contents  # readers saw the switches happen
    assert frozenset(p.id for p in load(index_dir).passages) == ids["B"]


def test_second_build_is_refused_while_the_first_publishes(tmp_path):
    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus, TINY_DOCS)
    build(corpus, index_dir, FakeEmbedder())
    before = load(index_dir)
    write_corpus(corpus, OTHER_DOCS)
    first = driver(
        corpus, index_dir, "--stop-at-step", "before os.rename"
    )  # holding the lock, about to rename its version into place
    try:
        for line in first.stdout:
            if line.startswith("STOP"):
                break
        second = subprocess.run(
            [sys.executable, "-m", "ingest", "--corpus", str(corpus), "--index", str(index_dir)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        first.kill()
        first.wait(timeout=10)
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert (
        f"error: {index_dir} is being updated by process {first.pid}; wait for it to finish and run again"
        in second.stderr
    )
    assert load(index_dir).passages == before.passages  # verified against every file hash
    build(corpus, index_dir, FakeEmbedder())
    assert {p.text for p in load(index_dir).passages} >= {"Wrist splints ease carpal tunnel symptoms at night."}


def test_builds_started_together_publish_once_and_corrupt_nothing(tmp_path):
    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus, TINY_DOCS)
    build(corpus, index_dir, FakeEmbedder())
    write_corpus(corpus, OTHER_DOCS)
    outcomes = []
    for _ in range(2):
        pair = [driver(corpus, index_dir, "--jitter-ms", "5") for _ in range(2)]
        results = [child.communicate(timeout=120) + (child.returncode,) for child in pair]
        for out, err, code in results:
            assert code == 0 or "IndexBusy" in err and "being updated by process" in err, err
            outcomes.append("published" if "published=True" in out else "up to date" if code == 0 else "refused")
        load(index_dir)  # every file matches its hash
    assert outcomes.count("published") == 1  # the content changed once; never two publishes of it
    reference = tmp_path / "reference"
    build(corpus, reference, FakeEmbedder())
    assert load(index_dir).passages == load(reference).passages
