"""SIGKILL during a build, at many moments: the previous index keeps answering, the next run completes.

A build runs in a child process (tests/crash_driver.py) that numbers every
file-system step of the store. The test kills it between two chosen steps
(spread over the whole build and covering every rename, pointer switch and
deletion) and at random times while it embeds and publishes with jitter.
After each kill the index must load without error and equal, passage for
passage and answer for answer, either the version before the build (when the
kill came before the pointer switch) or the complete new one; a fresh build
must then complete, publish the new content and leave no staging folder.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from index.embed.fake import FakeEmbedder
from index.search.searcher import Searcher
from index.store.reader import load
from ingest.pipeline import build
from tests import crash_driver
from tests.helpers import REPO, TINY_DOCS

pytestmark = pytest.mark.slow

# Each kill needs a new process; forking them from a server that has imported
# the driver (numpy, FAISS, bm25s) once makes a kill cost milliseconds, not seconds.
FORKSERVER = multiprocessing.get_context("forkserver")
FORKSERVER.set_forkserver_preload(["tests.crash_driver"])


@pytest.fixture(scope="module", autouse=True)
def forkserver():
    """Start the fork server from the repository folder, so it imports `tests.crash_driver`.

    The server is a new `python -c` process: it finds the installed packages
    (index, ingest) itself, and the `tests` package in its working directory.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)
        multiprocessing.forkserver.ensure_running()


QUESTIONS = ["vertebral fractures heal", "hip flexors stretch", "knee cartilage running", "ankle sprain ice"]
DETERMINISTIC_KILLS = 30
RANDOM_KILLS = 20


def snapshot(index_dir: Path):
    """Everything a reader sees: the passages and the answers to a few questions."""
    stored = load(index_dir, model=FakeEmbedder.name)
    searcher = Searcher(stored, FakeEmbedder())
    return stored.passages, [searcher.search(q, k=3) for q in QUESTIONS]


@pytest.fixture(scope="module")
def states(tmp_path_factory):
    """A pristine index holding two versions of corpus A, and the snapshots of A and of B built on it."""
    root = tmp_path_factory.mktemp("crash")
    corpus = root / "corpus"
    for name, text in TINY_DOCS.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text, encoding="utf-8")
    pristine = root / "pristine"
    build(corpus, pristine, FakeEmbedder())  # version A0, deleted when B publishes
    (corpus / "knees.txt").write_text("Knee cartilage wears down with age and long-distance running.", encoding="utf-8")
    build(corpus, pristine, FakeEmbedder())  # version A, live
    old = snapshot(pristine)
    # Corpus B: a new document, an edited one, a removed one.
    (corpus / "ankles.md").write_text(
        "An ankle sprain heals faster with ice, rest and early gentle movement.", encoding="utf-8"
    )
    (corpus / "copy.txt").write_text(
        "Spinal fusion joins vertebrae. Recovery from fusion surgery takes months.", encoding="utf-8"
    )
    (corpus / "hips" / "flexors.md").unlink()
    reference = root / "reference"
    shutil.copytree(pristine, reference)
    build(corpus, reference, FakeEmbedder())
    new = snapshot(reference)
    assert old != new
    return root, corpus, pristine, old, new


def fresh_index(root: Path, pristine: Path, name: str) -> Path:
    index_dir = root / name
    shutil.copytree(pristine, index_dir)
    return index_dir


class Driver:
    """A build in a child process (forked from a server that imported the driver once), reporting its steps."""

    def __init__(
        self,
        corpus: Path,
        index_dir: Path,
        stop_at: int | None = None,
        jitter_ms: float = 0.0,
        embed_seconds: float = 0.0,
    ) -> None:
        self.lines: list[str] = []
        self._receive, send = FORKSERVER.Pipe(duplex=False)
        self.process = FORKSERVER.Process(
            target=crash_driver.child, args=(send, corpus, index_dir, stop_at, jitter_ms, embed_seconds), daemon=True
        )
        self.process.start()
        send.close()

    def read_until(self, prefix: str) -> str:
        """Read reported lines until one starts with `prefix` (fails if the child ends first)."""
        while True:
            try:
                line = self._receive.recv()
            except EOFError:
                self.process.join()
                pytest.fail(
                    f"driver ended (exit code {self.process.exitcode}) before {prefix}; last: {self.lines[-3:]}"
                )
            self.lines.append(line)
            if line.startswith(prefix):
                return line

    def kill(self) -> bool:
        """SIGKILL the child; returns whether it had already finished its build."""
        self.process.kill()
        self.process.join(timeout=60)
        while self._receive.poll():  # what it reported before dying
            try:
                self.lines.append(self._receive.recv())
            except EOFError:
                break
        completed = any(line.startswith("DONE") for line in self.lines)
        assert self.process.exitcode == -signal.SIGKILL or (completed and self.process.exitcode == 0)
        return completed

    def events(self) -> list[str]:
        return [line.split(" ", 3)[2] + " " + line.split(" ", 3)[3] for line in self.lines if line.startswith("EVENT")]


def trace(corpus: Path, index_dir: Path, **options) -> tuple[list[str], float]:
    """Run a build to completion: its events in order and the seconds from READY to DONE."""
    driver = Driver(corpus, index_dir, **options)
    driver.read_until("READY")
    began = time.monotonic()
    assert driver.read_until("DONE") == "DONE published=True"
    elapsed = time.monotonic() - began
    driver.process.join(timeout=10)
    assert driver.process.exitcode == 0
    return driver.events(), elapsed


def check_after_kill(index_dir: Path, corpus: Path, old, new, switched: bool | None) -> str:
    """The index answers as exactly one whole version; a rerun completes and tidies up. Returns which."""
    seen = snapshot(index_dir)
    if switched is None:
        assert seen in (old, new)
    else:
        assert seen == (new if switched else old)
    version = "new" if seen == new else "old"
    build(corpus, index_dir, FakeEmbedder())
    assert snapshot(index_dir) == new
    assert not list(index_dir.glob(".tmp-*")) and not list(index_dir.glob(".CURRENT.*"))
    assert len(list(index_dir.glob("v-*"))) <= 3  # a version orphaned by the kill goes at the next publish
    return version


def choose_kill_points(events: list[str], count: int) -> list[int]:
    """Event numbers (1-based) spread over the build, always including every rename, replace and rmtree step."""
    critical = {i + 1 for i, e in enumerate(events) if any(w in e for w in ("rename", "replace", "rmtree"))}
    spread = {round(1 + i * (len(events) - 1) / (count - 1)) for i in range(count)}
    return sorted(critical | spread)


def test_kill_between_any_two_steps_keeps_one_whole_version(states):
    root, corpus, pristine, old, new = states
    events, _ = trace(corpus, fresh_index(root, pristine, "trace"))
    switch = events.index("after os.replace") + 1  # from this event on, CURRENT names the new version
    points = choose_kill_points(events, DETERMINISTIC_KILLS)
    assert len(points) >= 20
    outcomes = []
    for point in points:
        index_dir = fresh_index(root, pristine, f"kill-{point}")
        driver = Driver(corpus, index_dir, stop_at=point)
        driver.read_until("STOP")
        assert not driver.kill()
        outcomes.append((point, events[point - 1], check_after_kill(index_dir, corpus, old, new, point >= switch)))
        shutil.rmtree(index_dir)
    print(f"\n{len(outcomes)} kills between steps survived:")
    for point, event, version in outcomes:
        print(f"  event {point:3d} {event:<30} -> {version} index served")


def test_kill_at_random_moments_keeps_one_whole_version(states):
    root, corpus, pristine, old, new = states
    options = {"embed_seconds": 0.3, "jitter_ms": 15}
    _, window = trace(corpus, fresh_index(root, pristine, "trace-random"), **options)
    rng = random.Random(6)
    outcomes = []
    for attempt in range(3 * RANDOM_KILLS):
        if sum(completed is False for _, _, completed, _ in outcomes) >= RANDOM_KILLS:
            break
        index_dir = fresh_index(root, pristine, f"random-{attempt}")
        driver = Driver(corpus, index_dir, **options)
        driver.read_until("READY")
        began = time.monotonic()
        delay = rng.uniform(0, window)
        time.sleep(delay)
        completed = driver.kill()
        if completed:  # the build beat the kill: aim within its real duration from now on
            window = min(window, time.monotonic() - began)
        where = next((line for line in reversed(driver.lines) if line.startswith(("EVENT", "DONE"))), "READY")
        outcomes.append((delay, where, completed, check_after_kill(index_dir, corpus, old, new, None)))
        shutil.rmtree(index_dir)
    print(f"\n{len(outcomes)} random kills, {sum(not c for _, _, c, _ in outcomes)} of them mid-build, all survived:")
    for delay, where, completed, version in outcomes:
        print(
            f"  at {delay:.2f}s, last step {where:<40} -> {version} index served{' (build had finished)' if completed else ''}"
        )
    # The test means something only if the kills landed inside builds, and some inside the store's steps.
    mid_build = [where for _, where, completed, _ in outcomes if not completed]
    assert len(mid_build) >= RANDOM_KILLS, f"only {len(mid_build)} of {len(outcomes)} kills landed mid-build"
    assert any(where.startswith("EVENT") for where in mid_build), "no kill landed while the store was writing"
