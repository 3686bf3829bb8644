"""Ingest throughput: the local pipeline against the Ray path with 1 and 2 embedding workers.

Builds the same SciFact corpus (or its first --docs abstracts) three times from
scratch in one run, with the bundled model: locally (the default embedder, all cores),
then on one local Ray instance with 1 and with 2 embedding actors (one CPU
each). Reports passages embedded per second of build time and the ratio to
the local build; the Ray instance's start-up is reported apart. Checks that
all three published the same passages and vectors (to float tolerance).

Then, on the vectors just built, the large-index recipe of index/retrievers/parts.py:
IVF+SQ8 assembled from 4 shards on disk, against the flat index: bytes per
vector on disk, query time and recall@10. These feed docs/scaling.md.

    python bench/ray_ingest.py [--docs 500] [--corpus ../shared/eval/scifact/corpus.jsonl]
    python bench/ray_ingest.py --docs 100000     # all 5,183 abstracts: about 95 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import faiss
import numpy as np
from report import record, table

from index.config import Config
from index.embed.registry import embedder_for, get_embedder
from index.retrievers.parts import IvfPlan, assemble, load_mmap
from index.store.reader import load
from ingest.distributed import build_on_ray, ray_session
from ingest.pipeline import build

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "scifact" / "corpus.jsonl"


def subset(corpus: Path, docs: int, folder: Path) -> Path:
    """The first `docs` records of a BEIR corpus.jsonl, as a corpus of its own."""
    if not corpus.is_file():
        raise SystemExit(f"error: {corpus} not found; pass --corpus PATH to a BEIR corpus.jsonl")
    out = folder / "corpus" / "corpus.jsonl"
    out.parent.mkdir(parents=True)
    with open(corpus, encoding="utf-8") as lines:
        out.write_text("".join(line for _, line in zip(range(docs), lines)), encoding="utf-8")
    return out.parent


def ivf_figures(vectors: np.ndarray, folder: Path) -> list[list]:
    """Flat against IVF+SQ8 assembled from shards: size per vector, ms per query, recall@10."""
    shards = np.array_split(vectors, 4)
    lists = max(8, int(math.sqrt(len(vectors))))
    began = time.perf_counter()
    path = assemble(shards, folder / "ivf", IvfPlan(lists=lists, codec="SQ8", sample=len(vectors)))
    assembled = time.perf_counter() - began
    ivf = load_mmap(path, probes=max(1, lists // 4))
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    faiss.write_index(flat, str(folder / "flat.faiss"))
    queries = vectors[:: max(1, len(vectors) // 300)][:300] + 0.02 * np.random.default_rng(0).standard_normal(
        (min(300, len(vectors)), vectors.shape[1])
    ).astype(np.float32)
    rows = []
    truth = None
    for name, index, size in [
        ("flat (float32)", flat, (folder / "flat.faiss").stat().st_size),
        (
            f"IVF{lists},SQ8 from 4 shards, nprobe {max(1, lists // 4)}",
            ivf,
            sum(p.stat().st_size for p in path.parent.iterdir()),
        ),
    ]:
        began = time.perf_counter()
        for query in queries:  # one at a time, as the app asks
            found = index.search(query[None, :], 10)[1]
        per_query = (time.perf_counter() - began) / len(queries) * 1000
        found = index.search(queries, 10)[1]
        truth = found if truth is None else truth
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
        rows.append([name, f"{size / len(vectors):.0f}", f"{per_query:.3f}", f"{recall:.3f}"])
    rows.append(
        [
            f"(IVF assembly: train + 4 shard adds + on-disk merge, {len(vectors)} vectors)",
            "",
            f"{assembled:.2f} s total",
            "",
        ]
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--docs", type=int, default=500, help="abstracts to ingest (default 500; more than the corpus holds = all)"
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="a BEIR corpus.jsonl")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    corpus = subset(args.corpus, args.docs, work)
    docs = sum(1 for _ in open(corpus / "corpus.jsonl", encoding="utf-8"))
    config = Config.resolve()
    model = embedder_for(config)
    runs: list[tuple[str, object]] = [("local, all cores", build(corpus, work / "local", model))]
    began = time.perf_counter()
    with ray_session(None):
        started = time.perf_counter() - began
        for workers in (1, 2):
            report = build_on_ray(
                corpus, work / f"ray-{workers}", partial(get_embedder, config.embedder, config), workers=workers
            )
            runs.append((f"Ray, {workers} embedding actor{'s' if workers > 1 else ''} (1 CPU each)", report))

    reference = load(work / "local")
    rows = []
    for (name, report), folder in zip(runs, ["local", "ray-1", "ray-2"]):
        stored = load(work / folder)
        same = stored.passages == reference.passages and np.allclose(
            stored.dense.vectors(), reference.dense.vectors(), atol=1e-5
        )
        rate = report.embedded / report.seconds
        rows.append(
            [
                name,
                report.passages,
                f"{report.seconds:.1f}",
                f"{rate:.1f}",
                f"{rate / (runs[0][1].embedded / runs[0][1].seconds):.2f}",
                "yes" if same else "NO",
            ]
        )
    body = (
        f"SciFact, first {docs} abstracts, bundled model ({model.backend} backend), each build from scratch; "
        f"Ray start-up ({started:.1f} s) not included.\n\n"
        + table(["build", "passages", "seconds", "passages/s", "ratio to local", "same index as local"], rows)
        + "\n\nOn this 2-core machine one actor uses one core where the local "
        "build uses both, and two actors cannot beat one by much more than the second core, "
        "less Ray's own overhead (task scheduling, start-up of each actor and its model).\n\n"
        + table(
            ["index over the same vectors", "bytes/vector on disk", "ms/query (1 at a time)", "recall@10 vs flat"],
            ivf_figures(reference.dense.vectors(), work),
        )
    )
    record("Ingest on Ray (SciFact)", body)
    print(json.dumps({"work": str(work)}))


if __name__ == "__main__":
    main()
