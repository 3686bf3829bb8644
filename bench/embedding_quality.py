"""Embedding quality: BEIR nDCG@10 with the int8 ONNX backend against torch fp32, on one index.

Loads an index built with the torch fp32 backend (e.g. SciFact), re-embeds
every passage with the int8 backend in memory (the index on disk is only
read), and evaluates dense and hybrid retrieval for each pairing of passage
vectors and query embedder: fp32/fp32 as built, int8/int8 as a fresh build
now makes it, and the two mixed pairings an existing index meets when the
backend changes. Also reports the cosine of each passage's two vectors.

    python bench/embedding_quality.py --index data/scifact [--beir DIR] [--vectors FILE.npy]

`--vectors` keeps the int8 passage vectors: read when the file exists (row i
= passage i of the index), written after embedding otherwise.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np
from report import record, table

from index import evaluate
from index.embed.registry import BundledModel
from index.retrievers.dense import EXACT, DenseIndex
from index.search.searcher import Searcher
from index.store.reader import load

SCIFACT = Path("/work/shared/eval/scifact")


def int8_vectors(stored, embedder: BundledModel, cache: Path | None) -> np.ndarray:
    if cache is not None and cache.exists():
        vectors = np.load(cache, allow_pickle=False)
        if vectors.shape != (len(stored.passages), embedder.dimensions):
            raise SystemExit(f"{cache} holds {vectors.shape} vectors, the index has {len(stored.passages)} passages")
        return vectors
    texts = [p.text for p in stored.passages]
    began, done = time.perf_counter(), 0

    def progress(count: int) -> None:
        nonlocal done
        done += count
        if done % 1024 < count:
            print(f"embedded {done}/{len(texts)} in {time.perf_counter() - began:.0f} s", flush=True)

    vectors = embedder.encode(texts, progress=progress)
    if cache is not None:
        np.save(cache, vectors, allow_pickle=False)
    return vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True, help="index built with the torch fp32 backend")
    parser.add_argument("--beir", type=Path, default=SCIFACT, help="folder with queries.jsonl and qrels/test.tsv")
    parser.add_argument("--vectors", type=Path, help="int8 passage vectors (.npy): read if present, else written")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    queries = evaluate.read_queries(args.beir / "queries.jsonl")
    qrels = evaluate.read_qrels(args.beir / "qrels" / "test.tsv")
    fp32, int8 = BundledModel(backend="torch"), BundledModel(backend="onnx-int8")
    stored = load(args.index, model=fp32.name)
    if int8.backend != "onnx-int8":
        raise SystemExit(f"the int8 backend is not available: {int8.notes}")
    fp32_index = stored
    vectors = int8_vectors(stored, int8, args.vectors)
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
    int8_index = replace(stored, dense=DenseIndex(EXACT, flat, vectors))

    cosine = (stored.dense.vectors() * vectors).sum(axis=1)
    settings = evaluate.beir_settings()  # as `python -m index eval`
    rows = []
    for passages, index in (("fp32", fp32_index), ("int8", int8_index)):
        for questions, embedder in (("fp32", fp32), ("int8", int8)):
            searcher = Searcher(index, embedder, settings)
            scores = {
                mode: evaluate.evaluate_beir(searcher, queries, qrels, mode=mode)["ndcg@10"]
                for mode in ("dense", "hybrid")
            }
            rows.append([passages, questions, f"{scores['dense']:.4f}", f"{scores['hybrid']:.4f}"])
            print(rows[-1], flush=True)
    base_dense, base_hybrid = float(rows[0][2]), float(rows[0][3])
    for row in rows:
        row += [f"{float(row[2]) - base_dense:+.4f}", f"{float(row[3]) - base_hybrid:+.4f}"]
    record(
        "Embedding quality",
        f"{args.beir.name} test ({len([q for q in qrels if q in queries])} queries), index {args.index} "
        f"({len(stored.passages)} passages). Passage cosine int8 vs fp32: mean {cosine.mean():.4f}, "
        f"1st percentile {np.percentile(cosine, 1):.4f}, min {cosine.min():.4f}.\n\n"
        + table(["passages", "questions", "dense nDCG@10", "hybrid nDCG@10", "dense vs fp32", "hybrid vs fp32"], rows),
    )


if __name__ == "__main__":
    main()
