"""How much faster an update is than a full rebuild, on SciFact (5,183 abstracts).

In one run, with the model loaded once beforehand (loading is not timed):

1. the baseline, a full rebuild with no previous index, which embeds each
   passage once (its answer sentences are pooled from that pass). With
   `--full` it is run for real (several minutes of embedding on two cores).
   Without it, it is measured in two parts in this run: everything but
   embedding, by really rebuilding into an empty folder with an embedder that
   replays the vectors of `--index` (a SciFact index of any format; the
   tokenizer is the real one; a text it has no vector for gets a fixed
   placeholder vector), plus embedding, by timing the real model on a random
   sample of the rebuild's passages and scaling to all of them;
2. add one document as a second file beside corpus.jsonl (embedded for real);
3. remove that file again (the index must then equal the full rebuild's);
4. append one record to corpus.jsonl itself (the file changes, so it is re-read).

Each update starts from a copy of the full rebuild's index. Each run is split
into phases by the pipeline's progress events: loading the previous index and
fingerprinting files, reading + chunking + dedup, embedding, publishing.

    python bench/incremental.py [--index data/dev-fp32/scifact] [--corpus ../shared/eval/scifact/corpus.jsonl] [--full]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from replay import Replay
from report import record, table

from index.config import Config
from index.embed.registry import BundledModel, embedder_for
from index.store.reader import load
from ingest.pipeline import build

ADDED = (
    "Vitamin D supplementation and fracture risk in older adults. "
    "Whether vitamin D supplements prevent fractures in community-dwelling older adults is uncertain. "
    "We pooled 11 randomised controlled trials with 31,022 participants aged 65 years or older. "
    "Supplementation at doses above 800 IU per day reduced hip fractures by 30% and non-vertebral "
    "fractures by 14%, whereas lower doses showed no benefit. "
    "Effects did not differ by calcium co-administration, sex or residence. "
    "High-dose vitamin D may therefore be favourable for the prevention of fractures in persons 65 years or older."
)
RECORD = (
    '{"_id": "bench-added", "title": "Aspirin after a first heart attack", "text": "'
    + (
        "Low-dose aspirin lowers the risk of a second myocardial infarction. "
        "In 2,400 patients followed for five years, recurrent events fell from 9.1% to 6.4%. "
        "Major bleeding rose slightly, from 0.7% to 1.1%."
    )
    + '"}\n'
)


class Phases:
    """Wall time between the pipeline's stage changes (progress events)."""

    def __init__(self) -> None:
        self.began = time.perf_counter()
        self.marks: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.marks.setdefault(stage, time.perf_counter())

    def split(self, ended: float) -> list[float]:
        read = self.marks.get("read", ended)
        embed = self.marks.get("embed", ended)
        publish = self.marks.get("publish", ended)
        return [read - self.began, embed - read, publish - embed, ended - publish]


def sampled_embedding_seconds(embedder: BundledModel, texts: list[str], sample: int) -> float:
    """Seconds the model would take for all `texts`, from timing a random sample of them."""
    rng = np.random.default_rng(0)
    chosen = [texts[i] for i in rng.choice(len(texts), min(sample, len(texts)), replace=False)]
    start = time.perf_counter()
    embedder.encode(chosen)
    return (time.perf_counter() - start) * len(texts) / len(chosen)


def timed(corpus: Path, index_dir: Path, embedder) -> tuple[float, list[float], object]:
    phases = Phases()
    report = build(corpus, index_dir, embedder, progress=phases)
    ended = time.perf_counter()
    return ended - phases.began, phases.split(ended), report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("../shared/eval/scifact/corpus.jsonl"))
    parser.add_argument(
        "--index", type=Path, default=Path("data/dev-fp32/scifact"), help="a SciFact index to replay vectors from"
    )
    parser.add_argument(
        "--full", action="store_true", help="run the full rebuild for real instead of in two measured parts"
    )
    parser.add_argument("--sample", type=int, default=600, help="texts embedded to time the model (without --full)")
    args = parser.parse_args()

    embedder = embedder_for(Config.resolve())
    embedder.encode(["warm up the model"])  # loading is not what we measure
    work = Path(tempfile.mkdtemp(prefix="incremental-bench-"))
    try:
        folder = work / "corpus"
        folder.mkdir()
        shutil.copyfile(args.corpus, folder / "corpus.jsonl")  # a link out of the corpus would be skipped
        rows = []

        def row(name: str, seconds: float, phases: list[float], report, baseline: float) -> None:
            rows.append(
                [
                    name,
                    f"{seconds:.1f}",
                    f"{baseline / seconds:.0f}×" if seconds != baseline else "1× (baseline)",
                    report.embedded if report else "",
                    report.passages if report else "",
                    *(f"{p:.1f}" for p in phases),
                ]
            )
            print(rows[-1], flush=True)

        if args.full:
            full_s, phases, report = timed(folder, work / "full", embedder)
            row("full rebuild", full_s, phases, report, full_s)
        else:
            replay = Replay(embedder, args.index)
            rest_s, phases, report = timed(folder, work / "full", replay)
            embed_s = sampled_embedding_seconds(embedder, replay.texts, args.sample)
            phases[2] = embed_s
            full_s = rest_s + embed_s
            row(
                f"full rebuild: measured without embedding + embedding its {len(replay.texts):,} passages "
                f"(one pass each, answer sentences pooled from it) timed on {args.sample} "
                f"({replay.missing:,} placeholders)",
                full_s,
                phases,
                report,
                full_s,
            )
        reference = load(work / "full")

        shutil.copytree(work / "full", work / "inc")
        (folder / "added.txt").write_text(ADDED, encoding="utf-8")
        seconds, phases, report = timed(folder, work / "inc", embedder)
        row("add one document (second file)", seconds, phases, report, full_s)

        (folder / "added.txt").unlink()
        seconds, phases, report = timed(folder, work / "inc", embedder)
        row("remove it again", seconds, phases, report, full_s)
        inc = load(work / "inc")
        same = inc.passages == reference.passages and np.array_equal(inc.dense.vectors(), reference.dense.vectors())

        shutil.copytree(work / "full", work / "append")
        appended = work / "appended"
        appended.mkdir()
        shutil.copyfile(args.corpus, appended / "corpus.jsonl")
        with open(appended / "corpus.jsonl", "a", encoding="utf-8") as out:
            out.write(RECORD)
        seconds, phases, report = timed(appended, work / "append", embedder)
        row("append one record to corpus.jsonl", seconds, phases, report, full_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    body = table(
        [
            "run",
            "seconds",
            "faster than full",
            "passages embedded",
            "passages",
            "load + fingerprint",
            "read + chunk + dedup",
            "embed",
            "publish",
        ],
        rows,
    )
    body += (
        f"\n\nModel loaded before timing. After removing the added file the index "
        f"{'equals' if same else 'DIFFERS FROM'} the full rebuild (passages and vectors). "
        "The full rebuild reads each passage with the model once (answer sentences are pooled from that pass). "
        f"Load average after: {os.getloadavg()[0]:.2f}."
    )
    record("Incremental update on SciFact", body)


if __name__ == "__main__":
    main()
