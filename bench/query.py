"""End-to-end query time on SciFact against a plain baseline, measured warm in one run.

Every SciFact test claim is asked in turn of each contender, interleaved
query by query so a busy machine slows all of them alike:

- plain: sentence-transformers `encode` of the question + IndexFlatIP top 5
  over the same passage vectors (no keyword search, no answer sentence);
- Searcher.search, k=5: embed the question, dense (passage and best
  sentence) + BM25 fusion, answer sentence and confidence of each hit from
  the stored sentence vectors (a searcher keeping no answers, so every
  question is computed);
- the same question asked again of a searcher that keeps answers (the app's
  example chips, shared links): answered from its cache.

Threads are set once, as in `python -m index` (`one_thread_per_question`):
FAISS and torch single-threaded, and the question on the embedder's ONNX
session for lone texts (every core). The plain contender is the baseline on
one torch thread; its twin on every core (torch's default, what a plain
script gets) is timed after the others. A first pass over all claims warms
caches; the second is timed. The target is a p50 of 8 ms for Searcher.search
(issue 26). `KB_EMBEDDER` chooses the backend that embeds the questions.

    python bench/query.py [--index data/dev/scifact] [--queries 300]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import faiss
import numpy as np
from report import interleaved, record, table

from index.config import Config, one_thread_per_question
from index.embed.registry import embedder_for
from index.evaluate import read_qrels, read_queries
from index.search.searcher import Searcher
from index.store.reader import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("data/dev/scifact"))
    parser.add_argument("--data", type=Path, default=Path("../shared/eval/scifact"))
    parser.add_argument("--queries", type=int, default=300, help="how many test claims to ask")
    args = parser.parse_args()

    import os

    one_thread_per_question()
    embedder = embedder_for(Config.resolve())
    stored = load(args.index, model=embedder.name)
    queries = read_queries(args.data / "queries.jsonl")
    claims = [queries[q] for q in read_qrels(args.data / "qrels" / "test.tsv")][: args.queries]
    model = embedder.model
    flat = faiss.IndexFlatIP(stored.manifest.dimensions)
    flat.add(np.ascontiguousarray(stored.dense.vectors(), dtype=np.float32))
    searcher = Searcher(stored, embedder, answers_kept=0)
    keeping = Searcher(stored, embedder, answers_kept=len(claims))  # every claim kept from the first pass

    def plain(q: str) -> None:
        vector = model.encode([q], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        flat.search(vector, 5)

    import torch

    def plain_every_core(q: str) -> None:
        torch.set_num_threads(os.cpu_count() or 1)
        try:
            plain(q)
        finally:
            torch.set_num_threads(1)

    contenders = {
        "plain: encode + IndexFlatIP": plain,
        "Searcher.search (stored sentence vectors)": lambda q: searcher.search(q, k=5),
        "  of which: embed the question": lambda q: embedder.encode([q]),
        "the same question again (answer kept)": lambda q: keeping.search(q, k=5),
    }
    timings = interleaved(contenders, claims)
    # Torch's OpenMP threads keep spinning after a pass and would slow whatever runs next, so the plain
    # script on every core is timed on its own pass after the others, not interleaved with them.
    timings |= interleaved({"plain, torch on every core (asked after the others)": plain_every_core}, claims)
    rows = []
    base = np.percentile(timings["plain: encode + IndexFlatIP"], [50, 95]) * 1000
    for name, seconds in timings.items():
        p50, p95 = np.percentile(seconds, [50, 95]) * 1000
        rows.append([name, f"{p50:.3g}", f"{p95:.3g}", f"{p50 / base[0]:.2f}×", f"{p95 / base[1]:.2f}×"])
        print(rows[-1], flush=True)
    body = table(["query path", "p50 ms", "p95 ms", "p50 / plain", "p95 / plain"], rows)
    body += (
        f"\n\n{len(claims)} SciFact test claims over {stored.manifest.passages:,} passages "
        f"({len(stored.sentences.vectors):,} answer-sentence vector rows), warm (second pass), interleaved per claim, "
        f"questions embedded by `{getattr(embedder, 'backend', embedder.name)}`. "
        f"Load average after: {os.getloadavg()[0]:.2f}."
    )
    record("Query time on SciFact", body)


if __name__ == "__main__":
    main()
