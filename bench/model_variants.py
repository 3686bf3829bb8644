"""Quality of each way to run the model, on every development set, as a user's build and questions meet it.

For each backend in `--variants` every development set is built with it
(`python -m ingest` with `KB_EMBEDDER` set: passages and their answer
sentences embedded by that graph), then asked its questions twice: with the
questions embedded by the same backend, and by fp32 ("onnx"), the pairing an
index built fast and queried exactly meets. Each figure is compared with
fp32/fp32; a pairing holds when it is within `--tolerance` of it on every
figure (issue 26: the default is the fastest pairing that holds).

Figures: SciFact train nDCG@10 (test reported, never chosen on), MedQuAD
nDCG@10, the bundled question sets' MRR@10 and answer-sentence accuracy, and
realdocs-dev's and realdocs-web's answer sentence right (realdocs-dev's
`score.py`, via `bench/realdocs.py`).

    python bench/model_variants.py [--work data/variants] [--variants onnx,onnx-int8,onnx-int8-blocks]

Indexes are kept under `--work/BACKEND/SET` and brought up to date on a rerun,
so a second run only asks the questions. Speed is measured by `bench/model_limit.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from realdocs import SETS as REALDOCS
from realdocs import score as realdocs_score
from report import record, table

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval"
FP32 = "onnx"
# set -> corpus to build
CORPORA = {
    "bundled": ROOT / "corpus",
    "medquad": EVAL / "medquad-dev" / "corpus.jsonl",
    "scifact": EVAL / "scifact" / "corpus.jsonl",
}
# figure -> (set, arguments of `python -m index eval`, key of its JSON)
BEIR = {
    "SciFact train nDCG@10": (
        "scifact",
        ["--queries", EVAL / "scifact/queries.jsonl", "--qrels", EVAL / "scifact/qrels/train.tsv"],
        "ndcg@10",
    ),
    "MedQuAD nDCG@10": (
        "medquad",
        ["--queries", EVAL / "medquad-dev/queries.jsonl", "--qrels", EVAL / "medquad-dev/qrels/test.tsv"],
        "ndcg@10",
    ),
}
QUESTIONS = {
    "questions.jsonl": ROOT / "corpus/questions.jsonl",
    "questions-everyday": ROOT / "corpus/questions-everyday.jsonl",
}
REPORTED = {
    "SciFact test nDCG@10": (
        "scifact",
        ["--queries", EVAL / "scifact/queries.jsonl", "--qrels", EVAL / "scifact/qrels/test.tsv"],
        "ndcg@10",
    )
}


def run(command: list, backend: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "KB_EMBEDDER": backend, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, *map(str, command)], env=env, check=True, cwd=ROOT, **kwargs)


def build(work: Path, backend: str) -> float:
    """Build (or bring up to date) every set's index with `backend`; the seconds it took."""
    began = time.perf_counter()
    for name, corpus in CORPORA.items():
        print(f"building {name} with {backend}", file=sys.stderr, flush=True)
        run(["-m", "ingest", "--corpus", corpus, "--index", work / backend / name], backend, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def evaluate(work: Path, built: str, asked: str) -> dict[str, float]:
    """Every figure for passages embedded by `built` and questions by `asked`."""
    figures: dict[str, float] = {}
    for label, (name, arguments, key) in {**BEIR, **REPORTED}.items():
        out = run(
            ["-m", "index", "eval", "--index", work / built / name, *arguments, "--json"],
            asked,
            capture_output=True,
            text=True,
        )
        figures[label] = json.loads(out.stdout)[key]
    for label, path in QUESTIONS.items():
        out = run(
            ["-m", "index", "eval", "--index", work / built / "bundled", "--questions", path, "--json"],
            asked,
            capture_output=True,
            text=True,
        )
        report = json.loads(out.stdout)
        figures[f"{label} MRR@10"] = report["mrr"]
        figures[f"{label} answer sentence"] = report["sentence_accuracy"]
    os.environ["KB_EMBEDDER"] = asked  # realdocs.score runs ingest and query in subprocesses of this environment
    try:
        for name, folder in REALDOCS.items():
            cells = realdocs_score(name, folder, work / built)
            right, total = cells[1].split("/")
            figures[f"{name} answer sentence right"] = int(right) / int(total)
    finally:
        os.environ.pop("KB_EMBEDDER")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "variants", help="where the indexes are kept")
    parser.add_argument(
        "--variants", default="onnx,onnx-int8,onnx-int8-blocks", help="backends to build with (onnx first)"
    )
    parser.add_argument("--tolerance", type=float, default=0.005, help="largest loss against fp32 that holds")
    parser.add_argument("--record", action="store_true", help="store the table in bench/RESULTS.md")
    args = parser.parse_args()
    variants = args.variants.split(",")
    if variants[0] != FP32:
        raise SystemExit(f"--variants must start with {FP32} (the reference)")
    seconds = {backend: build(args.work, backend) for backend in variants}
    pairings = [(FP32, FP32)] + [(b, q) for b in variants[1:] for q in (b, FP32)]
    figures = {pairing: evaluate(args.work, *pairing) for pairing in pairings}
    reference = figures[(FP32, FP32)]
    labels = list(reference)
    chosen_on = [label for label in labels if label not in REPORTED]
    rows = []
    for label in labels:
        cells = [label, f"{reference[label]:.4f}"]
        cells += [f"{figures[p][label]:.4f} ({figures[p][label] - reference[label]:+.4f})" for p in pairings[1:]]
        rows.append(cells)
    holds = []
    for pairing in pairings[1:]:
        worst = min(figures[pairing][label] - reference[label] for label in chosen_on)
        holds.append(f"{'yes' if worst >= -args.tolerance else 'no'} (worst {worst:+.4f})")
    rows.append([f"holds within {args.tolerance} on every set chosen on", "", *holds])
    rows.append(
        [
            "build of bundled + MedQuAD + SciFact, s (this run; 0 when up to date)",
            f"{seconds[FP32]:.0f}",
            *(f"{seconds[b]:.0f}" for b, _ in pairings[1:]),
        ]
    )
    headers = ["figure", "fp32 / fp32", *(f"{b} / {q}" for b, q in pairings[1:])]
    body = (
        "Passages embedded by / questions embedded by. Within the tolerance means no figure chosen on "
        "(all but SciFact test) is lower by more than it.\n\n"
        + table(headers, rows)
        + f"\n\nRerun: `python bench/model_variants.py --variants {args.variants}`"
    )
    print(body)
    if args.record:
        record("Model variants on every development set (bench/model_variants.py)", body)


if __name__ == "__main__":
    main()
