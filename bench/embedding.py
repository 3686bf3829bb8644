"""Embedding speed: passages per second of each way to run the bundled model, and agreement with fp32.

Takes the first passages of a BEIR corpus, chunked as ingest chunks them, and
embeds them with every variant: plain sentence-transformers (the baseline),
our length-sorted torch model, torch bf16, onnxruntime fp32 and int8 graphs,
and thread settings. The CPU is shared, so the sample is split into rounds
and each round runs every variant in turn: load changes hit all variants
alike, and speed is reported as a ratio to the baseline of the same run.
Cosine is each variant's vector against the baseline's, passage by passage.

    python bench/embedding.py [--corpus FILE] [--passages 480] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from report import record, table

from index.embed.onnx_model import OnnxEncoder, cached_onnx, export
from index.embed.registry import BundledModel
from index.records import Settings
from ingest.chunking import chunk_document
from ingest.loaders import Document, iter_documents

SCIFACT = Path("/work/shared/eval/scifact/corpus.jsonl")
# bf16 runs ~5x slower than fp32 on CPUs without native bf16; a few passages per round show it.
SLOW_LIMIT = 24


def sample_passages(corpus: Path, count: int, count_tokens: Callable[[str], int]) -> list[str]:
    """The first `count` passages of `corpus`, chunked with ingest's default settings."""
    texts: list[str] = []
    for item in iter_documents(corpus):
        if isinstance(item, Document):
            texts += [chunk.text for chunk in chunk_document(item, count_tokens, Settings())]
        if len(texts) >= count:
            break
    if not texts:
        raise SystemExit(f"no passages found in {corpus}")
    return texts[:count]


def onnx_variant(path: Path, threads: int = 0) -> Callable[[list[str]], np.ndarray]:
    """A BundledModel (length-sorted batches of 64) running the given graph."""
    model = BundledModel()
    model.__dict__["_runner"] = ("onnx", OnnxEncoder(path, threads=threads))
    return model.encode


def torch_threads(encode: Callable, threads: int) -> Callable[[list[str]], np.ndarray]:
    import torch

    def run(texts):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return encode(texts)
        finally:
            torch.set_num_threads(before)

    return run


def variants(work: Path) -> dict[str, tuple[Callable[[list[str]], np.ndarray], int | None]]:
    """name -> (encode, passages per round or None for all). The first is the baseline."""
    import torch

    torch_model = BundledModel(backend="torch")
    st = torch_model.model

    def bf16(texts):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return st.encode(texts, batch_size=32, normalize_embeddings=True)

    model_dir = torch_model.path
    graphs = {}
    for name, options in {
        "plain-fp32": dict(fuse=False, quantize=None),
        "fused-fp32": dict(fuse=True, quantize=None),
        "fused-int8-tensor": dict(fuse=True, quantize="per-tensor", min_cosine=0.0),  # measured, not used
        "fused-int8-channel-float-embeddings": dict(
            fuse=True, quantize="per-channel", keep_float=("EmbedLayerNormalization", "Gather")
        ),
    }.items():
        began = time.perf_counter()
        graphs[name] = work / f"{name}.onnx"
        export(model_dir, graphs[name], **options)
        print(f"exported {name} in {time.perf_counter() - began:.0f} s", flush=True)
    began = time.perf_counter()
    int8 = BundledModel(backend="onnx-int8", cache_dir=work / "cache")
    int8_graph = cached_onnx(model_dir, int8.cache_dir, variant="onnx-int8")
    print(f"exported onnx-int8 in {time.perf_counter() - began:.0f} s", flush=True)
    return {
        "sentence-transformers fp32, batch 32 (baseline)": (
            lambda texts: st.encode(texts, batch_size=32, normalize_embeddings=True),
            None,
        ),
        "BundledModel torch fp32 (sorted, batch 64)": (torch_model.encode, None),
        "BundledModel torch fp32, 1 thread": (torch_threads(torch_model.encode, 1), None),
        "torch bf16 autocast, batch 32": (bf16, SLOW_LIMIT),
        "onnxruntime fp32": (onnx_variant(graphs["plain-fp32"]), None),
        "onnxruntime fp32, fused (BundledModel default, onnx)": (onnx_variant(graphs["fused-fp32"]), None),
        "onnxruntime int8 per-tensor, fused": (onnx_variant(graphs["fused-int8-tensor"]), None),
        "onnxruntime int8 per-channel, fused, fp32 embeddings": (
            onnx_variant(graphs["fused-int8-channel-float-embeddings"]),
            None,
        ),
        "onnxruntime int8 per-channel, fused (onnx-int8)": (int8.encode, None),
        "same, 1 thread": (onnx_variant(int8_graph, threads=1), None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SCIFACT, help="BEIR corpus.jsonl (default: SciFact)")
    parser.add_argument("--passages", type=int, default=480, help="passages in the sample (default: 480)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds the sample is split into (default: 3)")
    args = parser.parse_args()
    if not args.corpus.exists():
        raise SystemExit(f"corpus {args.corpus} not found; pass --corpus FILE (a BEIR corpus.jsonl)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    texts = sample_passages(args.corpus, args.passages, BundledModel().count_tokens)
    with tempfile.TemporaryDirectory() as work:
        runs = variants(Path(work))
        seconds = {name: 0.0 for name in runs}
        done = {name: 0 for name in runs}
        vectors: dict[str, dict[int, np.ndarray]] = {name: {} for name in runs}
        size = -(-len(texts) // args.rounds)
        for begin in range(0, len(texts), size):
            rows = list(range(begin, min(begin + size, len(texts))))
            for name, (encode, limit) in runs.items():
                part = rows[:limit] if limit else rows
                began = time.perf_counter()
                out = np.asarray(encode([texts[i] for i in part]), dtype=np.float32)
                seconds[name] += time.perf_counter() - began
                done[name] += len(part)
                vectors[name].update(zip(part, out))
            print(f"round {begin // size + 1}/{args.rounds} done", flush=True)

    baseline = next(iter(runs))
    base_rate = done[baseline] / seconds[baseline]
    rows = []
    for name in runs:
        rate = done[name] / seconds[name]
        cosine = np.array([float(v @ vectors[baseline][i]) for i, v in vectors[name].items()])
        rows.append(
            [name, done[name], f"{rate:.1f}", f"{rate / base_rate:.2f}", f"{cosine.mean():.4f}", f"{cosine.min():.4f}"]
        )
    lengths = [BundledModel().count_tokens(t) for t in texts]
    record(
        "Embedding speed",
        f"{len(texts)} passages from {args.corpus.name} (mean {np.mean(lengths):.0f} word pieces), "
        f"{args.rounds} interleaved rounds; cosine against the baseline's vectors.\n\n"
        + table(["variant", "passages", "passages/s", "x baseline", "cosine mean", "cosine min"], rows),
    )


if __name__ == "__main__":
    main()
