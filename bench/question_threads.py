"""One question's model pass on one thread or on every core, on a quiet machine and a busy one.

A lone question (the command line, the app, MCP: one person asking) is
embedded by one ONNX Runtime call. This measures that call over the SciFact
test claims and the bundled questions on two sessions of the same graph: one
thread (the baseline) and every core (`OnnxEncoder`'s default), each question
asked of both in turn. It does so under four loads, started by this script:

- none (whatever else runs on the machine; its load average is printed);
- one busy process per core (pure Python loops);
- three busy processes per core;
- another process embedding passages on every core (a build running beside
  the questions).

Each figure is the median (and 95th percentile) over the questions.

Then the cost of that choice when several people ask at once: a searcher
over the bundled corpus asked the bundled questions by 1, 4 and 16 threads
for `--seconds` each, its question session on one thread or on every core,
alternating, twice (questions/s and CPU time per question).

    python -m bench.question_threads [--questions 150] [--seconds 8] [--record]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np

from bench.report import interleaved, record, table
from bench.serve import REPO, questions

SCIFACT = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "scifact"


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def _build(stop, graph: str) -> None:
    """Embed long passages on every core until stopped, as a build does."""
    from index.embed.onnx_model import OnnxEncoder
    from index.embed.registry import BundledModel

    model = BundledModel()
    encoder = OnnxEncoder(Path(graph))
    batch = model.tokenizer.arrays(["the passage goes on " * 50] * 16)
    while not stop.is_set():
        encoder(batch)


def crowd_runs(seconds: float) -> str:
    """Questions/s of a searcher asked by 1, 4 and 16 threads at once, questions on one thread or every core."""
    import tempfile

    from bench.question_batches import _drive
    from index.config import one_thread_per_question
    from index.embed.onnx_model import OnnxEncoder
    from index.embed.registry import BundledModel
    from index.search.searcher import Searcher
    from index.store.reader import load
    from ingest.pipeline import build

    one_thread_per_question()
    asked = questions()
    model = BundledModel()
    runner = model._runner[1]
    sessions = {"1 thread": OnnxEncoder(runner.path, threads=1), "every core": OnnxEncoder(runner.path, threads=0)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="kb-bench-threads-") as tmp:
        build(REPO / "corpus", Path(tmp) / "idx", model)
        stored = load(Path(tmp) / "idx")
        for round_ in (1, 2):
            for threads in (1, 4, 16):
                for name, session in sessions.items():
                    runner.__dict__["alone"] = session  # the session `OnnxRunner` gives a lone text
                    qps, cpu = _drive(Searcher(stored, model, answers_kept=0), asked, threads, seconds)
                    rows.append([round_, threads, name, f"{qps:.1f}", f"{cpu:.2f}", f"{os.getloadavg()[0]:.1f}"])
    headers = ["round", "threads asking", "question session", "questions/s", "CPU ms per question", "load"]
    return (
        f"A searcher over the bundled corpus, each number of threads asking the bundled questions for {seconds:g} s"
        " with each session:\n\n" + table(headers, rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=150, help="SciFact test claims (and bundled questions)")
    parser.add_argument("--data", type=Path, default=SCIFACT)
    parser.add_argument("--seconds", type=float, default=8, help="per run of the searcher asked at once")
    parser.add_argument("--record", action="store_true", help="store the table in bench/RESULTS.md")
    args = parser.parse_args()

    from index.embed.onnx_model import OnnxEncoder, cached_onnx
    from index.embed.registry import BundledModel
    from index.evaluate import read_qrels, read_queries

    model = BundledModel()
    graph = cached_onnx(model.path, model.cache_dir, variant="onnx")
    encoders = {"1 thread": OnnxEncoder(graph, threads=1), "every core": OnnxEncoder(graph, threads=0)}
    queries = read_queries(args.data / "queries.jsonl")
    claims = [queries[q] for q in read_qrels(args.data / "qrels" / "test.tsv")][: args.questions]
    sets = {
        "SciFact claims": [model.tokenizer.arrays([c]) for c in claims],
        "bundled questions": [model.tokenizer.arrays([q]) for q in questions()[: args.questions]],
    }
    cores = os.cpu_count() or 1
    loads = {
        "none": [],
        f"{cores} busy processes": [(_spin, ())] * cores,
        f"{3 * cores} busy processes": [(_spin, ())] * (3 * cores),
        "a build on every core": [(_build, (str(graph),))],
    }
    rows = []
    context = multiprocessing.get_context("spawn")
    for load, workers in loads.items():
        stop = context.Event()
        started = [context.Process(target=target, args=(stop, *extra), daemon=True) for target, extra in workers]
        for process in started:
            process.start()
        time.sleep(5 if workers else 0)  # the build loads its model first
        before = os.getloadavg()[0]
        for name, batches in sets.items():
            seen = interleaved(encoders, batches)
            one, every = (np.array(seen[name]) * 1000 for name in ("1 thread", "every core"))
            rows.append(
                [
                    load,
                    name,
                    f"{np.median(one):.2f} / {np.percentile(one, 95):.2f}",
                    f"{np.median(every):.2f} / {np.percentile(every, 95):.2f}",
                    f"{np.median(every) / np.median(one):.2f}×",
                    f"{before:.1f} to {os.getloadavg()[0]:.1f}",
                ]
            )
        stop.set()
        for process in started:
            process.join()
    headers = ["other work", "questions", "1 thread: p50 / p95 ms", "every core: p50 / p95 ms", "p50 ratio", "load"]
    body = (
        table(headers, rows)
        + f"\n\n{len(claims)} SciFact test claims and {len(sets['bundled questions'])} bundled questions, each one"
        " call of the fp32 graph (`onnx`), both sessions asked in turn, the first pass a warm-up. Every core is"
        f" {cores} here.\n\n"
        + crowd_runs(args.seconds)
        + f"\n\nRerun: `python -m bench.question_threads --questions {args.questions} --seconds {args.seconds:g}`"
    )
    if args.record:
        record("One question on one thread or every core (bench/question_threads.py)", body)
    else:
        print(body)


if __name__ == "__main__":
    main()
