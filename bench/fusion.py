"""Choose the fusion of dense and keyword retrieval by measurement on SciFact.

Settings are chosen on the train qrels and reported on the test qrels, for
dense alone, BM25 alone, reciprocal rank fusion at several k, and a convex
combination of min-max normalised scores at several dense weights.
Needs the SciFact index:

    python -m ingest --corpus ../shared/eval/scifact/corpus.jsonl --index data/scifact
    python bench/fusion.py [--index data/scifact] [--data ../shared/eval/scifact]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from report import record, table

from index.config import Config
from index.embedding import BundledModel, embedder_for
from index.evaluate import beir_settings, evaluate_beir, read_qrels, read_queries
from index.search import Searcher, SearchSettings
from index.store import load


class MemoEmbedder:
    """Encodes each text once; the configurations below share query vectors."""

    def __init__(self, inner: BundledModel) -> None:
        self.inner, self.cache = inner, {}
        self.name, self.dimensions, self.max_tokens = inner.name, inner.dimensions, inner.max_tokens

    def encode(self, texts, progress=None):
        import numpy as np

        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.inner.encode(missing)))
        return np.vstack([self.cache[t] for t in texts])

    def count_tokens(self, text):
        return self.inner.count_tokens(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("data/scifact"))
    parser.add_argument("--data", type=Path, default=Path("../shared/eval/scifact"))
    args = parser.parse_args()

    embedder = MemoEmbedder(embedder_for(Config.resolve()))
    stored = load(args.index, model=embedder.name)
    queries = read_queries(args.data / "queries.jsonl")
    splits = {name: read_qrels(args.data / "qrels" / f"{name}.tsv") for name in ("train", "test")}

    configs = [("dense", "dense", SearchSettings()), ("keyword", "keyword", SearchSettings())]
    configs += [(f"rrf k={k}", "hybrid", SearchSettings(fusion="rrf", rrf_k=k)) for k in (10, 30, 60, 100)]
    configs += [
        (f"convex w={w}", "hybrid", SearchSettings(fusion="convex", dense_weight=w))
        for w in (0.3, 0.5, 0.6, 0.7, 0.8, 0.9)
    ]
    rows = []
    for label, mode, settings in configs:
        searcher = Searcher(stored, embedder, beir_settings(settings))
        scores = {split: evaluate_beir(searcher, queries, qrels, mode=mode) for split, qrels in splits.items()}
        rows.append(
            [
                label,
                f"{scores['train']['ndcg@10']:.4f}",
                f"{scores['test']['ndcg@10']:.4f}",
                f"{scores['test']['recall@100']:.4f}",
                f"{scores['test']['mrr@10']:.4f}",
            ]
        )
        print(rows[-1], flush=True)
    best = max(rows[2:], key=lambda row: float(row[1]))
    record(
        "Fusion on SciFact",
        table(["retrieval", "train nDCG@10", "test nDCG@10", "test Recall@100", "test MRR@10"], rows)
        + f"\n\nChosen on train: **{best[0]}** (test nDCG@10 {best[2]}).",
    )


if __name__ == "__main__":
    main()
