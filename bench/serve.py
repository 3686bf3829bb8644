"""The HTTP API under load: uvicorn and Ray Serve layouts side by side, a CLI baseline, and a 100M projection.

Builds the bundled corpus (or --corpus) with the bundled model twice, as 4
shards and as 1, then serves it on free localhost ports, one layout after another:

- uvicorn, 1 worker and 2 workers (`python -m index serve --workers W`);
- Ray Serve, 1 shard x 2 replicas and 4 shards x 1 replica
  (`python -m index serve --ray --shards N --replicas R`, a local Ray instance);
- uvicorn with 1 and 2 workers and Ray Serve with 1 shard x 2 replicas again with
  batching off (`KB_BATCH_QUESTIONS=1`: each question its own model pass and
  shard calls), so the ratio comes from one run: the two servers of a pair
  run at once (two local Ray instances for Ray Serve) and take the load in
  alternating 10-second turns, so the machine's other work falls on both alike;

each first asked every question once by one client (the unloaded latency),
then driven by `--clients` concurrent HTTP clients asking the bundled
questions in a loop for `--seconds`. An error is a refused or failed request
or an answer that differs from the single-process searcher's (Ray Serve's are
compared without "did you mean", a one-process feature). The CLI
baseline answers the same questions without a server: one `python -m index
query` process per question (what a program does today), and one process for
all of them.

Then, in this process, what a shard costs at a realistic size: a synthetic
shard of `--shard-passages` random passages (IVF+SQ8 vectors, BM25 over
Zipf-distributed words) answers `ShardIndex.candidates`, the router's merge and
fusion run over 16 shards' candidate lists, and the model embeds a question.
From those it simulates a 100M-passage deployment: shard count, memory per
node, p99 (the slowest of 16 shards, sampled from the measured latencies and
scaled to the shard size) and where the router becomes the bottleneck.

    python -m bench.serve [--seconds 60] [--clients 16] [--corpus DIR] [--shard-passages 200000] [--record]

Localhost only; every server and Ray instance it starts is stopped before it exits.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import numpy as np

from bench.api_server import start_api, stop_api
from bench.report import record, table

REPO = Path(__file__).resolve().parent.parent
# The baseline of batching: each question its own model pass (and, on Ray Serve, its own shard calls).
OFF = {"KB_BATCH_QUESTIONS": "1"}
# The clients ask the same questions in a loop: servers keep no answers, so every question is computed.
NO_KEPT_ANSWERS = {"KB_ANSWERS_KEPT": "0"}
UNBATCHED = "batching off"
# Seconds per turn when two servers are loaded in turns (`serve_pair`).
TURN = 10.0


@dataclass
class Run:
    """One configuration's measurements: unloaded latencies, then the loaded run's."""

    label: str
    replicas: int
    alone: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    loads: list[float] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def row(self) -> list:
        return [
            self.label,
            f"{self.throughput:.1f}",
            f"{self.throughput / self.replicas:.1f}",
            ms(self.alone, 50),
            ms(self.latencies, 50),
            ms(self.latencies, 95),
            ms(self.latencies, 99),
            len(self.errors),
            f"{np.mean(self.loads):.1f}" if self.loads else "-",
        ]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.0f}" if values else "-"


def questions() -> list[str]:
    return [
        json.loads(line)["query"]
        for name in ("questions.jsonl", "questions-everyday.jsonl")
        for line in (REPO / "corpus" / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def prepare(corpus: Path, work: Path, asked: list[str]) -> tuple[Path, Path, dict[str, dict], dict[str, dict]]:
    """The corpus built as 4 shards and as 1 (same passages), and the single-process answers, with and without "did you mean"."""
    from index.embed.registry import BundledModel
    from index.search.searcher import Searcher
    from index.store.reader import load
    from ingest.pipeline import build

    model = BundledModel()
    four, one = work / "idx-4", work / "idx-1"
    build(corpus, four, model, shards=4)
    shutil.copytree(four, one)
    build(corpus, one, model, shards=1)  # the same vectors, reused: only the layout changes
    searcher = Searcher(load(four), model)
    answers = {q: json.loads(json.dumps(searcher.search(q, 5).to_json(False))) for q in asked}
    # Sharded serving suggests no corrected question (a one-process feature): its answers compare without.
    unsuggested = {q: json.loads(json.dumps(searcher.search(q, 5, suggest=False).to_json(False))) for q in asked}
    return four, one, answers, unsuggested


def wait_all_ready(client: httpx.Client, url: str, streak: int = 20, timeout: float = 300) -> None:
    """Until /readyz says ready `streak` times in a row: every uvicorn worker has loaded, not just the first."""
    deadline, ready = time.monotonic() + timeout, 0
    while ready < streak:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} was not ready {streak} times in a row within {timeout:.0f}s")
        ready = ready + 1 if client.get(f"{url}/readyz").status_code == 200 else 0
        if not ready:
            time.sleep(0.2)


def drive(url: str, asked: list[str], answers: dict[str, dict], run: Run, clients: int, seconds: float) -> None:
    """Ask every question once alone, then `clients` at once for `seconds`; fills `run`."""
    ask_alone(url, asked, answers, run)
    load(url, asked, answers, run, clients, seconds)


def ask_alone(url: str, asked: list[str], answers: dict[str, dict], run: Run) -> None:
    """Once the server is ready, ask every question once, one at a time (`run.alone`)."""
    with httpx.Client(timeout=120) as client:
        wait_all_ready(client, url)
        for question in asked:
            began = time.perf_counter()
            response = client.post(f"{url}/query", json={"query": question, "k": 5})
            took = time.perf_counter() - began
            if response.status_code != 200 or response.json() != answers[question]:
                run.errors.append(f"alone: HTTP {response.status_code} for {question!r}")
            else:
                run.alone.append(took)


def load(url: str, asked: list[str], answers: dict[str, dict], run: Run, clients: int, seconds: float) -> None:
    """`clients` asking at once for `seconds`, added to `run` (latencies, errors, seconds, the load average)."""
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop(offset: int) -> None:
        i = offset
        with httpx.Client(timeout=120) as client:
            while time.monotonic() < deadline:
                question = asked[i % len(asked)]
                began = time.perf_counter()
                try:
                    response = client.post(f"{url}/query", json={"query": question, "k": 5})
                    problem = None
                    if response.status_code != 200:
                        problem = f"HTTP {response.status_code}: {response.text[:200]}"
                    elif response.json() != answers[question]:
                        problem = f"a different answer to {question!r}"
                except httpx.HTTPError as exc:
                    problem = repr(exc)
                took = time.perf_counter() - began
                with lock:
                    (run.errors.append(problem) if problem else run.latencies.append(took))
                i += 1

    began = time.monotonic()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.seconds += time.monotonic() - began
    run.loads.append(os.getloadavg()[0])


def serve_pair(label, args, replicas, work, asked, answers, clients, seconds, turn=TURN) -> tuple[Run, Run]:
    """`label` with batching off and on, both servers up at once and loaded in alternating turns of `turn` seconds.

    Turns share out the machine's other load between the two alike, so their ratio holds on a busy machine.
    """
    off, on = Run(f"{label}, {UNBATCHED}", replicas), Run(label, replicas)
    print(f"{label}: starting, batching off and on", file=sys.stderr)
    servers = []
    try:
        for run, env in ((off, OFF), (on, {})):
            log = work / f"server-{label.replace(' ', '-').replace(',', '')}-{len(servers)}.log"
            servers.append(
                start_api(args, {"RAY_USAGE_STATS_ENABLED": "0", **NO_KEPT_ANSWERS, **env}, log, timeout=600)
            )
            ask_alone(servers[-1][1], asked, answers, run)
        for _ in range(max(1, round(seconds / turn))):
            for run, (_, url) in zip((off, on), servers):
                load(url, asked, answers, run, clients, turn)
    finally:
        for server, _ in servers:
            stop_api(server)
    for run in (off, on):
        print(f"{run.label}: {run.throughput:.1f} questions/s, {len(run.errors)} errors", file=sys.stderr)
    return off, on


def serve_and_drive(label, args, env, replicas, log, asked, answers, clients, seconds) -> Run:
    run = Run(label, replicas)
    print(f"{label}: starting", file=sys.stderr)
    server, url = start_api(args, {"RAY_USAGE_STATS_ENABLED": "0", **NO_KEPT_ANSWERS, **env}, log, timeout=600)
    try:
        drive(url, asked, answers, run, clients, seconds)
    finally:
        stop_api(server)
    print(f"{label}: {run.throughput:.1f} questions/s, {len(run.errors)} errors", file=sys.stderr)
    return run


def batching_ratios(runs: dict[str, Run]) -> str:
    """Batching against no batching, and Ray Serve per replica against a uvicorn worker, from this run's figures."""
    lines = []
    for layout in ("uvicorn, 1 worker", "uvicorn, 2 workers", "Ray Serve, 1 shard x 2 replicas"):
        on, off = runs.get(layout), runs.get(f"{layout}, {UNBATCHED}")
        if on and off and off.throughput:
            lines.append(
                f"- {layout}: batching answers {on.throughput / off.throughput:.2f}x the questions/s "
                f"({on.throughput:.1f} against {off.throughput:.1f}), p95 {ms(on.latencies, 95)} ms against "
                f"{ms(off.latencies, 95)} ms, a question alone {ms(on.alone, 50)} ms against {ms(off.alone, 50)} ms."
            )
    ray, local = runs.get("Ray Serve, 1 shard x 2 replicas"), runs.get("uvicorn, 1 worker")
    if ray and local and local.throughput:
        per_replica = ray.throughput / ray.replicas
        lines.append(
            f"- Ray Serve per replica (1 shard x 2 replicas) against a uvicorn worker, both batching: "
            f"{per_replica:.1f} against {local.throughput:.1f} questions/s, {per_replica / local.throughput:.0%}."
        )
    return "\n".join(lines)


def cli_runs(index: Path, asked: list[str], seconds: float, work: Path) -> list[Run]:
    """No server: a process per question, for `seconds` (at least one), and one process for every question."""
    command = [sys.executable, "-m", "index", "query", "--json", "--index", str(index)]
    each = Run("CLI, one process per question (1 at a time)", 1)
    began = time.monotonic()
    i = 0
    while i == 0 or time.monotonic() - began < seconds:
        start = time.perf_counter()
        done = subprocess.run([*command, asked[i % len(asked)]], cwd=REPO, capture_output=True, text=True)
        (each.latencies if done.returncode == 0 else each.errors).append(time.perf_counter() - start)
        i += 1
    each.seconds = time.monotonic() - began
    each.alone = list(each.latencies)
    batch = Run(f"CLI, one process for all {len(asked)} questions", 1)
    listing = work / "questions.txt"
    listing.write_text("\n".join(asked) + "\n", encoding="utf-8")
    start = time.perf_counter()
    done = subprocess.run([*command, "--file", str(listing)], cwd=REPO, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode == 0 and len(done.stdout.splitlines()) == len(asked):
        batch.latencies = [took / len(asked)] * len(asked)  # only the total is known: its mean per question
    else:
        batch.errors.append(done.stderr[-300:])
    batch.seconds = took
    return [each, batch]


@dataclass
class ShardCosts:
    """In-process costs (seconds per call) of the parts of one question."""

    passages: int
    shard: list[float]
    keyword: list[float]
    merge16: list[float]
    embed: list[float]


def measure_shard(passages: int, work: Path, asked: list[str]) -> ShardCosts:
    """A synthetic shard of `passages` passages (IVF+SQ8, BM25), the router's 16-way merge, the model's embedding."""
    from index.embed.registry import BundledModel
    from index.retrievers.dense import DenseIndex
    from index.retrievers.keyword import KeywordIndex
    from index.search.settings import SearchSettings
    from index.search.sharded import rank_shards, shard_candidates
    from index.store.shards import ShardIndex
    from index.store.version import Segment, SentenceVectors

    rng = np.random.default_rng(0)
    model = BundledModel()
    settings = SearchSettings()
    print(f"synthetic shard: {passages:,} passages", file=sys.stderr)
    vectors = rng.standard_normal((passages, model.dimensions), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    folder = work / "shard"
    folder.mkdir()
    kind = DenseIndex.kind_for(passages, 0)  # approximate, as a shard of a large collection is
    DenseIndex.save(folder, vectors, kind)
    dense = DenseIndex.load(folder, kind)
    # Words drawn from a Zipf law over a 50,000-word vocabulary, 60 per passage: term statistics like prose.
    vocabulary = np.array([f"w{i}" for i in range(50_000)])
    ranks = np.minimum(rng.zipf(1.2, size=(passages, 60)), len(vocabulary)) - 1
    keyword = KeywordIndex.build([" ".join(vocabulary[row]) for row in ranks])
    sentences = SentenceVectors(vectors.astype(np.float16), np.arange(passages + 1, dtype=np.int64))
    shard = ShardIndex(folder, 0, np.arange(passages), Segment([], dense, keyword, sentences), model.name)
    embedded = model.encode(asked)
    costs = ShardCosts(passages, [], [], [], [])
    for question, vector in zip(asked, embedded):
        query = " ".join(vocabulary[rng.zipf(1.2, size=6).clip(max=len(vocabulary)) - 1])
        began = time.perf_counter()
        part = shard_candidates(shard, query, vector, settings.candidates, None)
        costs.shard.append(time.perf_counter() - began)
        began = time.perf_counter()
        shard.keyword.scores(query)  # the BM25 part of the above, measured again alone
        costs.keyword.append(time.perf_counter() - began)
        # The merge's work: 16 shards' lists as long as a real shard's (this one's, on 16 row ranges).
        parts = [
            replace(
                part,
                shard=s,
                dense_rows=part.dense_rows + s * passages,
                keyword_rows=part.keyword_rows + s * passages,
                rows=part.rows + s * passages,
            )
            for s in range(16)
        ]
        began = time.perf_counter()
        rank_shards(parts, settings)
        costs.merge16.append(time.perf_counter() - began)
        began = time.perf_counter()
        model.encode([question])
        costs.embed.append(time.perf_counter() - began)
    return costs


def project(costs: ShardCosts, runs: dict[str, Run], total: int = 100_000_000, shards: int = 16) -> str:
    """The 100M-passage deployment, simulated from the measured costs."""
    per_shard = total // shards
    # An IVF shard with ~2 sqrt(n) lists and a fixed share of lists probed scans ~sqrt(n) codes;
    # BM25 (bm25s) touches every posting of the question's terms: ~n. The larger factor bounds both.
    dense_factor = (per_shard / costs.passages) ** 0.5
    keyword_factor = per_shard / costs.passages
    rng = np.random.default_rng(0)
    keyword = np.array(costs.keyword)
    dense = np.maximum(np.array(costs.shard) - keyword, 0.0)
    picks = rng.integers(0, len(keyword), size=(20_000, shards))
    scaled = dense[picks] * dense_factor + keyword[picks] * keyword_factor
    router = percentile(costs.embed, 50) + percentile(costs.merge16, 50)
    ray = runs.get("Ray Serve, 4 shards x 1 replica")
    local = runs.get("uvicorn, 1 worker")
    hop = max(0.0, percentile(ray.alone, 50) - percentile(local.alone, 50)) if ray and local else float("nan")
    latency = scaled.max(axis=1) + router + hop
    bytes_per_passage = {
        "IVF+SQ8 vectors": 392,
        "float16 re-scoring copy": 768,
        "answer-sentence vectors (4 x float16)": 3072,
        "BM25": 558,
        "passage text": 816,
    }
    node_bytes = sum(bytes_per_passage.values()) * per_shard * 2
    rows = [
        ["shards x passages", f"{shards} x {per_shard:,}", "as in the plan below"],
        [
            "memory-mapped data per node (2 shards)",
            f"{node_bytes / 1e9:.0f} GB",
            " + ".join(f"{k} {v} B" for k, v in bytes_per_passage.items()) + " per passage",
        ],
        [
            "measured shard cost at " + f"{costs.passages:,}",
            f"p50 {ms(costs.shard, 50)} ms, p99 {ms(costs.shard, 99)} ms",
            "synthetic shard, in process",
        ],
        [
            "of which BM25 scoring",
            f"p50 {ms(costs.keyword, 50)} ms, p99 {ms(costs.keyword, 99)} ms",
            "bm25s scores every passage: grows with the shard",
        ],
        [
            "scale to the shard size",
            f"BM25 x{keyword_factor:.0f} (linear), the rest x{dense_factor:.1f} (IVF scan, sqrt)",
            "applied to each sampled question's two parts",
        ],
        [
            "router per question",
            f"{router * 1000:.1f} ms",
            f"embed p50 {ms(costs.embed, 50)} ms + 16-way merge and fusion p50 {ms(costs.merge16, 50)} ms",
        ],
        [
            "Ray Serve hop (4x1 minus uvicorn, unloaded p50)",
            f"{hop * 1000:.0f} ms" if hop == hop else "-",
            "measured above",
        ],
        [
            "simulated p50 / p99 per question",
            f"{percentile(list(latency), 50) * 1000:.0f} / {percentile(list(latency), 99) * 1000:.0f} ms",
            f"slowest of {shards} sampled shard costs, scaled, + router + hop",
        ],
        ["one router core's ceiling", f"{1 / router:.0f} questions/s", "1 / router cost"],
        [
            "one shard replica's ceiling",
            f"{1 / percentile(list(scaled.ravel()), 50):.1f} questions/s",
            "1 / scaled shard p50",
        ],
    ]
    return table(["quantity", "value", "how"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="seconds of load per configuration (default 60)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients (default 16)")
    parser.add_argument("--corpus", type=Path, default=REPO / "corpus", help="documents to serve (default: bundled)")
    parser.add_argument("--shard-passages", type=int, default=200_000, help="synthetic shard size (default 200000)")
    parser.add_argument("--record", action="store_true", help="also store the tables in bench/RESULTS.md")
    args = parser.parse_args(argv)
    asked = questions()
    runs: dict[str, Run] = {}
    with tempfile.TemporaryDirectory(prefix="kb-bench-serve-") as tmp:
        work = Path(tmp)
        four, one, answers, unsuggested = prepare(args.corpus, work, asked)
        local_1, local_2 = ["--index", str(four), "--workers", "1"], ["--index", str(four), "--workers", "2"]
        ray_1x2 = ["--index", str(one), "--ray", "--shards", "1", "--replicas", "2"]
        ray_4x1 = ["--index", str(four), "--ray", "--shards", "4", "--replicas", "1"]
        load_args = (args.clients, args.seconds)
        pair = serve_pair("uvicorn, 1 worker", local_1, 1, work, asked, answers, *load_args)
        runs.update((run.label, run) for run in pair)
        pair = serve_pair("uvicorn, 2 workers", local_2, 2, work, asked, answers, *load_args)
        runs.update((run.label, run) for run in pair)
        pair = serve_pair("Ray Serve, 1 shard x 2 replicas", ray_1x2, 2, work, asked, unsuggested, *load_args)
        runs.update((run.label, run) for run in pair)
        label = "Ray Serve, 4 shards x 1 replica"
        runs[label] = serve_and_drive(label, ray_4x1, {}, 1, work / "server-4x1.log", asked, unsuggested, *load_args)
        for run in cli_runs(four, asked, args.seconds, work):
            runs[run.label] = run
        costs = measure_shard(args.shard_passages, work, asked)
    headers = [
        "configuration",
        "questions/s",
        "per replica",
        "p50 alone (ms)",
        "p50 (ms)",
        "p95 (ms)",
        "p99 (ms)",
        "errors",
        "load",
    ]
    body = (
        f"{args.clients} concurrent HTTP clients for {args.seconds:.0f} s per configuration, "
        f"{len(asked)} bundled questions in a loop, k=5; 'alone' is one client asking each once first. "
        "An error is a failed request or an answer that differs from the single-process searcher's "
        '(on Ray Serve, without "did you mean", a one-process feature). '
        "Batching off: KB_BATCH_QUESTIONS=1; a pair with and without batching ran at once, loaded in alternating "
        f"{TURN:g}-second turns. "
        "Per replica: questions/s over the processes that answer each question (uvicorn workers; a shard's replicas).\n\n"
        + "Load: the 1-minute load average as each loaded stretch ended, averaged (2 cores, shared with other work).\n\n"
        + table(headers, [run.row() for run in runs.values()])
        + "\n\n"
        + batching_ratios(runs)
        + "\n\n### 100M passages, simulated from the measured costs\n\n"
        + project(costs, runs)
    )
    body += f"\n\nRerun: `python -m bench.serve --seconds {args.seconds:g} --clients {args.clients} --shard-passages {args.shard_passages}`"
    if args.record:
        record("Serving: uvicorn and Ray Serve under load (bench/serve.py)", body)
    else:
        print(body)
    return 0 if not any(run.errors for run in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
