"""End-to-end query time on SciFact against a plain baseline, measured warm in one run.

Every SciFact test claim is asked in turn of each contender, interleaved
query by query so a busy machine slows all of them alike:

- plain: sentence-transformers `encode` of the question + IndexFlatIP top 5
  over the same passage vectors (no keyword search, no answer sentence);
- Searcher.search, k=5: embed the question, dense + BM25 fusion, answer
  sentence of each hit from the stored sentence vectors;
- the same with sentences embedded at query time (what search did before
  sentence vectors were stored), for comparison.

Each runs with torch set to 1 and to 2 threads; FAISS runs single-threaded,
as in `python -m index` (`one_thread_per_question`). A first pass over all
claims warms caches; the second is timed.

An index built before sentence vectors were stored (such as one whose
full re-embedding would take hours on a busy two-core machine) is completed
in memory: the answer candidates of every passage that the measured claims
retrieve are embedded for real, so every answer is the one a complete index
gives; rows of passages no claim retrieves stay zero and are never read.

    python bench/query.py [--index data/scifact-speed] [--queries 300]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np
from report import record, table

from index.config import Config, one_thread_per_question
from index.embedding import embedder_for
from index.evaluate import read_qrels, read_queries
from index.search import Searcher
from index.sentences import stored_candidates
from index.store import SentenceVectors, load


def with_sentences_for(stored, embedder, claims: list[str]):
    """A copy of `stored` whose sentence vectors are real for every passage the claims retrieve."""
    searcher = Searcher(stored, embedder)
    rows = sorted(
        {
            row
            for claim, vector in zip(claims, embedder.encode(claims))
            for row in searcher.rank(" ".join(claim.split()), vector).rows[:5]
        }
    )
    spans = {row: stored_candidates(stored.passages[row].text) for row in rows}
    starts = SentenceVectors.starts_for([len(spans.get(row, ())) for row in range(len(stored.passages))])
    texts = [stored.passages[row].text[s:e] for row in rows for s, e in spans[row]]
    print(f"embedding {len(texts)} answer candidates of {len(rows)} retrieved passages", flush=True)
    vectors = np.zeros((int(starts[-1]), stored.manifest.dimensions), dtype=np.float16)
    vectors[np.concatenate([np.arange(starts[r], starts[r + 1]) for r in rows])] = embedder.encode(texts)
    return replace(stored, sentences=SentenceVectors(vectors, starts)), len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("data/scifact-speed"))
    parser.add_argument("--data", type=Path, default=Path("../shared/eval/scifact"))
    parser.add_argument("--queries", type=int, default=300, help="how many test claims to ask")
    parser.add_argument("--with-old", action="store_true", help="also time sentences embedded per query (slow)")
    args = parser.parse_args()

    import torch

    one_thread_per_question()
    embedder = embedder_for(Config.resolve())
    stored = load(args.index, model=embedder.name)
    queries = read_queries(args.data / "queries.jsonl")
    claims = [queries[q] for q in read_qrels(args.data / "qrels" / "test.tsv")][: args.queries]
    completed = ""
    if stored.sentences is None:
        stored, embedded = with_sentences_for(stored, embedder, claims)
        completed = (
            f" Sentence vectors embedded in memory for the {embedded:,} candidates of the passages the claims retrieve."
        )
    model = embedder.model
    flat = faiss.IndexFlatIP(stored.manifest.dimensions)
    flat.add(np.ascontiguousarray(stored.dense.vectors(), dtype=np.float32))
    searcher = Searcher(stored, embedder)
    query_time_sentences = Searcher(replace(stored, sentences=None), embedder)
    if completed:  # check the completion: same answers as embedding at query time
        for claim in claims[:20]:
            assert searcher.search(claim).hits[0].answer == query_time_sentences.search(claim).hits[0].answer, claim

    def plain(q: str) -> None:
        vector = model.encode([q], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        flat.search(vector, 5)

    contenders = {
        "plain: encode + IndexFlatIP": plain,
        "Searcher.search (stored sentence vectors)": lambda q: searcher.search(q, k=5),
        "  of which: embed the question": lambda q: embedder.encode([q]),
    }
    if args.with_old:
        contenders["Searcher.search (sentences embedded per query, before)"] = lambda q: query_time_sentences.search(
            q, k=5
        )
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        timings = {name: [] for name in contenders}
        for timed in (False, True):
            for claim in claims:
                for name, run in contenders.items():
                    start = time.perf_counter()
                    run(claim)
                    if timed:
                        timings[name].append(time.perf_counter() - start)
        base = np.percentile(timings["plain: encode + IndexFlatIP"], [50, 95]) * 1000
        for name, seconds in timings.items():
            p50, p95 = np.percentile(seconds, [50, 95]) * 1000
            rows.append([name, threads, f"{p50:.1f}", f"{p95:.1f}", f"{p50 / base[0]:.2f}×", f"{p95 / base[1]:.2f}×"])
            print(rows[-1], flush=True)
    body = table(["query path", "torch threads", "p50 ms", "p95 ms", "p50 / plain", "p95 / plain"], rows)
    body += (
        f"\n\n{len(claims)} SciFact test claims over {stored.manifest.passages:,} passages "
        f"({len(stored.sentences.vectors):,} answer-sentence vector rows), warm (second pass), interleaved per claim.{completed}"
    )
    record("Query time on SciFact", body)


if __name__ == "__main__":
    main()
