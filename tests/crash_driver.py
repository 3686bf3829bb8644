"""Run one build in a process of its own so that a test can SIGKILL it at a chosen moment.

    python -m tests.crash_driver CORPUS INDEX [--stop-at N | --stop-at-step STEP] [--jitter-ms MS] [--embed-seconds S]

Every file-system step the store takes (mkdir, fsync, rename, replace,
unlink, rmdir, FAISS write, BM25 save) is an event, numbered before and after
it runs and reported as `EVENT n before|after name`. With `--stop-at N` the
process reports `STOP n` at event N and sleeps until it is killed, so the
parent can kill it exactly between two steps (`--stop-at-step "before
os.rename"` stops at the first such step instead). `--jitter-ms` sleeps a random
time at every event, and `--embed-seconds` slows the embedder, to widen the
windows a randomly timed kill can land in. `READY` comes once the hooks are
set and `DONE` when the build returns. From the command line the lines go to
stdout; tests/test_crash.py starts `child` through a forkserver that has
imported this module once, and reads them from a pipe.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import faiss
from tqdm import tqdm

from index.embed.fake import SlowFakeEmbedder
from index.retrievers.keyword import KeywordIndex
from ingest.pipeline import build


class Events:
    """Numbers file-system steps; stops or jitters at them."""

    def __init__(self, stop_at: int | str | None, jitter: float, emit: Callable[[str], None]) -> None:
        self.count = 0
        self.stop_at = stop_at
        self.jitter = jitter
        self.emit = emit

    def __call__(self, when: str, name: str) -> None:
        self.count += 1
        self.emit(f"EVENT {self.count} {when} {name}")
        if self.stop_at in (self.count, f"{when} {name}"):
            self.emit(f"STOP {self.count}")
            time.sleep(600)  # the parent kills us here
        if self.jitter:
            time.sleep(random.uniform(0, self.jitter))

    def wrap(self, owner, attribute: str) -> None:
        original = getattr(owner, attribute)
        name = f"{getattr(owner, '__name__', owner)}.{attribute}"

        def hooked(*args, **kwargs):
            self("before", name)
            try:
                return original(*args, **kwargs)
            finally:
                self("after", name)

        setattr(owner, attribute, hooked)


def run(
    corpus: Path,
    index_dir: Path,
    stop_at: int | str | None,
    jitter_ms: float,
    embed_seconds: float,
    emit: Callable[[str], None],
) -> None:
    """Hook the store's file-system steps, then build."""
    events = Events(stop_at, jitter_ms / 1000, emit)
    for name in ("mkdir", "fsync", "rename", "replace", "unlink", "rmdir"):
        events.wrap(os, name)
    events.wrap(faiss, "write_index")
    events.wrap(KeywordIndex, "save")
    events.wrap(shutil, "rmtree")
    emit("READY")
    report = build(corpus, index_dir, SlowFakeEmbedder(embed_seconds))
    emit(f"DONE published={report.published}")


def child(connection, *args) -> None:
    """multiprocessing target: `run`, reporting through `connection`."""
    # tqdm (inside bm25s) would create a multiprocessing lock that a killed
    # child leaves behind for the resource tracker to warn about.
    tqdm.set_lock(threading.RLock())
    run(*args, emit=connection.send)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", type=Path)
    parser.add_argument("index", type=Path)
    parser.add_argument("--stop-at", type=int, help="stop at this event number")
    parser.add_argument("--stop-at-step", help='or at the first event described so, e.g. "before os.rename"')
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--embed-seconds", type=float, default=0.0)
    args = parser.parse_args()

    run(
        args.corpus,
        args.index,
        args.stop_at or args.stop_at_step,
        args.jitter_ms,
        args.embed_seconds,
        emit=lambda line: print(line, flush=True),
    )


if __name__ == "__main__":
    main()
