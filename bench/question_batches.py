"""Questions in batches: what a model pass over 2 to 16 questions costs, and what batching gives a searcher.

In this process, with the bundled model and the bundled questions:

1. The model's cost per question for batches of 1, 2, 4, 8 and 16 questions
   drawn at random, on one ONNX Runtime thread and on two, each batch as
   one call padded to its longest question or cut into runs of similar
   length (`index.embed.batching.group_by_length`). Sizes and thread counts
   alternate within each round, and each figure is the best of `--rounds`.
2. What one call costs beyond its word pieces (`PASS_OVERHEAD`): a call over
   n copies of an L-word-piece text, fitted as a + b * n * L.
3. A searcher over the bundled corpus asked by `--threads` threads at once
   for `--seconds`: each question its own model pass (the baseline) against
   `BatchingEmbedder`, one after the other, twice. CPU time is this
   process's; the machine's load average is printed beside it.

    python -m bench.question_batches [--rounds 5] [--threads 16] [--seconds 15] [--record]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.report import record, table
from bench.serve import REPO, questions

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as a server sets it (index.serve.app.one_thread_per_pass)


def pass_costs(rounds: int) -> str:
    """Milliseconds of model per question by batch size, thread count and cut."""
    from index.embed.batching import group_by_length
    from index.embed.onnx_model import OnnxEncoder, cached_onnx
    from index.embed.registry import BundledModel
    from index.embed.tokens import pad

    model = BundledModel()
    graph = cached_onnx(model.path, model.cache_dir, variant="onnx")
    encoders = {threads: OnnxEncoder(graph, threads=threads) for threads in (1, 2)}
    asked = questions()
    encodings = model.tokenizer.encode(asked)
    lengths = [len(e.ids) for e in encodings]
    rng = np.random.default_rng(0)
    sizes = (1, 2, 4, 8, 16)
    batches = {size: [rng.choice(len(asked), size, replace=False) for _ in range(max(4, 64 // size))] for size in sizes}
    best: dict[tuple[int, int, str], float] = {}
    for encoder in encoders.values():
        encoder(pad(encodings[:4]))
    for _ in range(rounds):
        for size in sizes:
            for threads, encoder in encoders.items():
                for cut in ("one call", "by length"):
                    began = time.perf_counter()
                    for rows in batches[size]:
                        calls = [range(size)] if cut == "one call" else group_by_length([lengths[r] for r in rows])
                        for call in calls:
                            encoder(pad([encodings[rows[i]] for i in call]))
                    took = (time.perf_counter() - began) / (size * len(batches[size])) * 1000
                    key = (size, threads, cut)
                    best[key] = min(best.get(key, took), took)
    rows = [
        [size, *(f"{best[(size, threads, cut)]:.2f}" for threads in (1, 2) for cut in ("one call", "by length"))]
        for size in sizes
    ]
    headers = [
        "questions per batch",
        "1 thread, one call",
        "1 thread, by length",
        "2 threads, one call",
        "2 threads, by length",
    ]
    mean = float(np.mean(lengths))
    return (
        f"Word pieces per bundled question: mean {mean:.1f}, longest {max(lengths)}. "
        f"Milliseconds of model per question, best of {rounds} rounds:\n\n" + table(headers, rows)
    )


def call_overhead() -> str:
    """A call's fixed cost in word pieces, fitted on n copies of a text of L word pieces (one thread)."""
    from index.embed.onnx_model import OnnxEncoder, cached_onnx
    from index.embed.registry import BundledModel

    model = BundledModel()
    encoder = OnnxEncoder(cached_onnx(model.path, model.cache_dir, variant="onnx"), threads=1)
    points = []
    for n in (1, 4, 16):
        for length in (6, 12, 24, 48):
            batch = model.tokenizer.arrays([" ".join(["word"] * (length - 2))] * n)
            encoder(batch)
            took = min(_timed(encoder, batch) for _ in range(7))
            points.append((n * length, took))
    tokens, seconds = np.array(points).T
    per_piece, fixed = np.polyfit(tokens, seconds, 1)
    return (
        f"One call over n texts of L word pieces (n in 1, 4, 16; L in 6, 12, 24, 48), one thread, best of 7: "
        f"{fixed * 1000:.2f} ms + {per_piece * 1000:.3f} ms per word piece, "
        f"so a call costs about {fixed / per_piece:.0f} word pieces beyond its own (`PASS_OVERHEAD`)."
    )


def _timed(call, *args) -> float:
    began = time.perf_counter()
    call(*args)
    return time.perf_counter() - began


def searcher_runs(threads: int, seconds: float) -> str:
    """Questions/s and CPU per question of a searcher asked by `threads` threads, without and with batching."""
    from index.config import one_thread_per_question
    from index.embed.batching import BatchingEmbedder
    from index.embed.registry import BundledModel
    from index.search.searcher import Searcher
    from index.store.reader import load
    from ingest.pipeline import build

    one_thread_per_question()
    asked = questions()
    model = BundledModel()
    with tempfile.TemporaryDirectory(prefix="kb-bench-batches-") as tmp:
        build(REPO / "corpus", Path(tmp) / "idx", model)
        stored = load(Path(tmp) / "idx")
        rows = []
        for label in ("each question alone", "BatchingEmbedder", "each question alone", "BatchingEmbedder"):
            embedder = BatchingEmbedder(model) if label == "BatchingEmbedder" else model
            qps, cpu = _drive(Searcher(stored, embedder, answers_kept=0), asked, threads, seconds)
            counts = getattr(embedder, "counts", None)
            batch = f"{counts.texts / counts.passes:.1f}" if counts and counts.passes else "1"
            rows.append([label, f"{qps:.1f}", f"{cpu:.2f}", batch, f"{os.getloadavg()[0]:.1f}"])
    headers = ["embedding", "questions/s", "CPU ms per question", "questions per pass", "load"]
    return (
        f"A searcher over the bundled corpus, {threads} threads asking the bundled questions for {seconds:g} s each:\n\n"
        + table(headers, rows)
    )


def _drive(searcher, asked: list[str], threads: int, seconds: float) -> tuple[float, float]:
    searcher.search("warm up")
    answered = [0] * threads
    deadline = time.monotonic() + seconds

    def loop(worker: int) -> None:
        i = worker * 9
        while time.monotonic() < deadline:
            searcher.search(asked[i % len(asked)], 5)
            answered[worker] += 1
            i += 1

    cpu, began = time.process_time(), time.monotonic()
    workers = [threading.Thread(target=loop, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = sum(answered)
    return total / (time.monotonic() - began), (time.process_time() - cpu) / total * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds of the model figures; each is the best (default 5)"
    )
    parser.add_argument("--threads", type=int, default=16, help="threads asking the searcher (default 16)")
    parser.add_argument("--seconds", type=float, default=15, help="seconds per searcher run (default 15)")
    parser.add_argument("--record", action="store_true", help="also store the tables in bench/RESULTS.md")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    costs = pass_costs(args.rounds)
    body = (
        f"Load average at the start: {load:.1f} (2 cores, shared).\n\n"
        + costs
        + "\n\n"
        + call_overhead()
        + "\n\n"
        + searcher_runs(args.threads, args.seconds)
        + f"\n\nRerun: `python -m bench.question_batches --rounds {args.rounds} --threads {args.threads} "
        f"--seconds {args.seconds:g}`"
    )
    if args.record:
        record("Speed at the limit: questions in batches (bench/question_batches.py)", body)
    else:
        print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
