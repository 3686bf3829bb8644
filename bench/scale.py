"""Dense search at a million passages: the approximate index against exact IndexFlatIP.

Embedding a million real passages is out of reach here (about 20 passages a
second on two cores), so the collection is grown from real embeddings:

1. the real vectors of an index built from SciFact (`--index`): every
   passage vector and every answer-sentence vector, all-MiniLM-L6-v2;
2. the distance from each of 2,000 sampled real vectors to its nearest other
   real vector is measured, and its median `d` taken;
3. the rest up to `--size` are real vectors picked at random plus Gaussian
   noise of expected length `d`, renormalised, so each new point lies about as
   far from its parent as real texts lie from their nearest neighbour and the
   cluster structure is that of real text, not of uniform noise.

Questions are the SciFact test claims, embedded by the model. Ground truth is
exact search over the float32 vectors. Both index types are written to disk
and each is then loaded by a fresh process through the library
(`index.retrievers.dense.DenseIndex.load`, memory-mapped for IVF), which searches one
question at a time through `Searcher.rank(mode="dense")` (the approximate
index re-scores its candidates exactly), twice (the second pass is timed),
and reports its resident memory.

    python bench/scale.py [--index data/scifact-speed] [--size 1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from index.records import FORMAT_VERSION, Manifest, Settings
from index.retrievers.dense import EXACT, DenseIndex, nprobe_for
from index.retrievers.parts import IvfPlan
from index.search.settings import SearchSettings
from index.store.reader import StoredIndex, load
from index.store.version import Segment

K = 10


def real_vectors(index_dir: Path) -> np.ndarray:
    stored = load(index_dir)
    parts = [np.asarray(stored.dense.vectors(), dtype=np.float32)]
    if stored.sentences is not None:
        parts.append(np.asarray(stored.sentences.vectors, dtype=np.float32))
    vectors = np.concatenate(parts)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def neighbour_distance(vectors: np.ndarray, rng: np.random.Generator) -> float:
    """Median distance from a sampled real vector to its nearest distinct real vector."""
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    sample = vectors[rng.choice(len(vectors), min(2000, len(vectors)), replace=False)]
    scores, _ = flat.search(sample, 5)
    nearest = [next((s for s in row if s < 0.9999), row[-1]) for row in scores]  # skip itself and exact copies
    return float(np.median(np.sqrt(np.maximum(0.0, 2 - 2 * np.array(nearest)))))


def expand(real: np.ndarray, size: int, distance: float, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((size, real.shape[1]), dtype=np.float32)
    out[: len(real)] = real
    scale = distance / np.sqrt(real.shape[1])
    for begin in range(len(real), size, 100_000):
        end = min(size, begin + 100_000)
        block = real[rng.integers(0, len(real), end - begin)] + rng.normal(
            scale=scale, size=(end - begin, real.shape[1])
        )
        out[begin:end] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def rss_mb() -> tuple[float, float]:
    status = Path("/proc/self/status").read_text()
    value = {
        line.split(":")[0]: int(line.split()[1]) for line in status.splitlines() if line.startswith(("VmRSS", "VmHWM"))
    }
    return value["VmRSS"] / 1024, value["VmHWM"] / 1024


class _Named:
    name = "bench"


def serve(folder: Path, kind: str, probes: list[int]) -> None:
    """Fresh-process half: load the vectors, answer every question twice, print figures as JSON."""
    from index.search.searcher import Searcher

    began = time.perf_counter()
    dense = DenseIndex.load(folder, kind)
    loaded = time.perf_counter() - began
    manifest = Manifest(
        FORMAT_VERSION, "bench", dense.dimensions, 0, len(dense), 0, Settings(), "", "", vector_index=kind
    )
    stored = StoredIndex(folder, manifest, Segment([], dense, None, []), {})
    searcher = Searcher(stored, _Named())
    queries = np.load(folder.parent / "queries.npy")
    truth = np.load(folder.parent / "truth.npy")
    results = []
    for probe in probes or [0]:
        if probe:
            faiss.extract_index_ivf(dense.faiss).nprobe = probe
        for _ in range(2):  # the first pass warms caches and pages, the second is timed
            seconds, found = [], []
            for query in queries:
                start = time.perf_counter()
                rows = searcher.rank("", query, mode="dense").rows[:K]
                seconds.append(time.perf_counter() - start)
                found.append(rows)
        recall = np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)])
        ms = np.array(seconds) * 1000
        results.append(
            {
                "nprobe": probe or None,
                "recall": float(recall),
                "p50": float(np.percentile(ms, 50)),
                "p95": float(np.percentile(ms, 95)),
            }
        )
    rss, peak = rss_mb()
    print(json.dumps({"results": results, "rss_mb": rss, "peak_mb": peak, "load_s": loaded}))


def in_fresh_process(folder: Path, kind: str, probes: list[int]) -> dict:
    command = [sys.executable, __file__, "--serve", str(folder), "--kind", kind, "--probes", *map(str, probes)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("data/scifact-speed"))
    parser.add_argument("--data", type=Path, default=Path("../shared/eval/scifact"))
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--exact-limit", type=int, default=Settings().exact_search_limit, help="to try small sizes")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--probes", type=int, nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.kind, args.probes)
        return

    from index.config import Config
    from index.embed.registry import embedder_for
    from index.evaluate import read_qrels, read_queries

    rng = np.random.default_rng(0)
    real = real_vectors(args.index)
    distance = neighbour_distance(real, rng)
    vectors = expand(real, args.size, distance, rng)
    queries_text = read_queries(args.data / "queries.jsonl")
    claims = [queries_text[q] for q in read_qrels(args.data / "qrels" / "test.tsv")]
    queries = embedder_for(Config.resolve()).encode(claims)
    print(
        f"{len(real)} real vectors, neighbour distance {distance:.3f}, {len(vectors)} vectors, {len(queries)} queries",
        flush=True,
    )

    work = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    try:
        np.save(work / "queries.npy", queries)
        kind = DenseIndex.kind_for(len(vectors), args.exact_limit)
        folders = {EXACT: work / "flat", kind: work / "approximate"}
        build_seconds = {}
        for name, folder in folders.items():
            folder.mkdir()
            start = time.perf_counter()
            DenseIndex.save(folder, vectors, name)
            build_seconds[name] = time.perf_counter() - start
            print(f"built {name} in {build_seconds[name]:.1f}s", flush=True)
        flat = faiss.read_index(str(folders[EXACT] / "vectors.faiss"))
        np.save(work / "truth.npy", flat.search(queries, K)[1])
        del flat
        nlist = IvfPlan.parse(kind).lists
        default_probe = nprobe_for(nlist)
        probes = sorted({16, 32, default_probe, 2 * default_probe})
        exact = in_fresh_process(folders[EXACT], EXACT, [])
        approximate = in_fresh_process(folders[kind], kind, probes)
        sizes = {name: sum(p.stat().st_size for p in folder.iterdir()) / 2**20 for name, folder in folders.items()}
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)

    base = exact["results"][0]
    rows = [
        [
            "IndexFlatIP (exact, baseline)",
            "1.000",
            f"{base['p50']:.1f}",
            f"{base['p95']:.1f}",
            f"{exact['rss_mb']:.0f}",
            f"{exact['peak_mb']:.0f}",
            f"{sizes[EXACT]:.0f}",
            f"{build_seconds[EXACT]:.1f}",
        ]
    ]
    for result in approximate["results"]:
        mark = " (default)" if result["nprobe"] == default_probe else ""
        rows.append(
            [
                f"{kind}, nprobe {result['nprobe']}{mark}",
                f"{result['recall']:.3f}",
                f"{result['p50']:.1f} ({result['p50'] / base['p50']:.2f}×)",
                f"{result['p95']:.1f}",
                f"{approximate['rss_mb']:.0f} ({approximate['rss_mb'] / exact['rss_mb']:.2f}×)" if mark else "",
                f"{approximate['peak_mb']:.0f}" if mark else "",
                f"{sizes[kind]:.0f}" if mark else "",
                f"{build_seconds[kind]:.1f} ({build_seconds[kind] / build_seconds[EXACT]:.0f}×)" if mark else "",
            ]
        )
    from report import record, table

    body = table(
        [
            "dense index",
            f"recall@{K} vs exact",
            "p50 ms",
            "p95 ms",
            "RSS MB after queries",
            "peak RSS MB",
            "on disk MB",
            "build s",
        ],
        rows,
    )
    body += (
        f"\n\n{len(vectors):,} vectors of 384 dimensions: {len(real):,} real all-MiniLM-L6-v2 embeddings of SciFact "
        f"passages (and answer sentences, if stored), the rest real vectors plus Gaussian noise of length {distance:.3f} (the median "
        f"distance from a real vector to its nearest neighbour), renormalised. {len(queries)} SciFact test claims as "
        f"questions, one at a time, warm (second pass), through Searcher.rank(mode='dense') in a fresh process that "
        f"loads the index (IVF memory-mapped); RSS includes the Python interpreter, numpy and FAISS. "
        f"{nlist} lists; the approximate index re-scores its top {SearchSettings().candidates} candidates with the float16 copy."
    )
    record("A million passages", body)


if __name__ == "__main__":
    main()
