"""Sharded search against the single-process searcher on a BEIR data set (SciFact by default): every query, every field.

Builds `--corpus` once with `--shards N` (in a temporary folder), then asks
every query of `--queries` of both `Searcher` (the whole index) and
`ShardedSearcher` (the N shards, merged as the Ray Serve router merges them)
and compares the answers whole: passages, ranks, scores, answer spans,
confidences and verdicts. Prints how many differ (the tests demand 0 on the
bundled corpus; this is the same check at SciFact's size).

    python -m bench.shard_equivalence [--corpus ../shared/eval/scifact/corpus.jsonl]
        [--queries ../shared/eval/scifact/queries.jsonl] [--shards 4] [--embedder fake|onnx] [-k 10] [--record]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.report import record, table
from index.config import Config
from index.embed.registry import embedder_for
from index.search.searcher import Searcher
from index.search.sharded import ShardedSearcher
from index.store.reader import load
from ingest.pipeline import build

SCIFACT = Path("/work/shared/eval/scifact")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=SCIFACT / "corpus.jsonl")
    parser.add_argument("--queries", type=Path, default=SCIFACT / "queries.jsonl")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--embedder", default="fake", help="fake (instant, exact ties) or onnx (the bundled model)")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--record", action="store_true", help="also store the table in bench/RESULTS.md")
    args = parser.parse_args(argv)
    queries = [json.loads(line)["text"] for line in args.queries.read_text(encoding="utf-8").splitlines() if line]
    embedder = embedder_for(Config(embedder=args.embedder))
    with tempfile.TemporaryDirectory(prefix="kb-shard-check-") as tmp:
        began = time.perf_counter()
        report = build(args.corpus, Path(tmp), embedder, shards=args.shards)
        built = time.perf_counter() - began
        whole = Searcher(load(Path(tmp)), embedder)
        sharded = ShardedSearcher.load(Path(tmp), args.shards, embedder)
        differ = [q for q in queries if sharded.search(q, args.k) != whole.search(q, args.k)]
    rows = [[args.corpus.parent.name, report.passages, args.shards, args.embedder, len(queries), args.k, len(differ)]]
    headers = ["data set", "passages", "shards", "embedder", "queries", "k", "answers that differ"]
    body = table(headers, rows) + f"\n\nBuilt in {built:.0f} s." + "".join(f"\n- differs: {q!r}" for q in differ[:5])
    if args.record:
        record(
            f"Sharded search equals one process: {args.corpus.parent.name}, {args.embedder} (bench/shard_equivalence.py)",
            body,
        )
    else:
        print(body)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
