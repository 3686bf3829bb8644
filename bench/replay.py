"""Rebuild an index in this program's format from an older index's vectors, without running the model.

An index's vectors depend only on the passage texts and the model, so a
rebuild of the same corpus with the same chunking can take them from any
earlier index of it (format 2 or 3: the files it reads are laid out alike),
and a change of format costs minutes instead of a full embedding pass. A text
the old index lacks gets a fixed placeholder vector, and the count of those
is printed: it must be 0 for the result to equal a real build.

    python bench/replay.py --source data/dev-fp32/scifact --corpus ../shared/eval/scifact/corpus.jsonl --index DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import faiss
import numpy as np

from index.config import Config
from index.embed.registry import BundledModel, embedder_for
from ingest.pipeline import build


class Replay:
    """The bundled model's name and tokenizer, with vectors looked up from an index instead of computed.

    The index's files are read directly (passages.jsonl, vectors.faiss, sentences.npy and
    sentence_rows.npy are laid out alike in format 2 and 3), so an index of an older format
    still serves: the rebuild's vectors are all that is taken from it.
    """

    def __init__(self, model: BundledModel, index_dir: Path) -> None:
        self.name, self.dimensions, self.max_tokens = model.name, model.dimensions, model.max_tokens
        self.count_tokens = model.count_tokens
        version = index_dir / (index_dir / "CURRENT").read_text(encoding="utf-8").strip()
        with open(version / "passages.jsonl", encoding="utf-8") as lines:
            texts = [json.loads(line)["text"] for line in lines]
        dense = faiss.read_index(str(version / "vectors.faiss"))
        vectors = dense.reconstruct_n(0, dense.ntotal).astype(np.float32)
        sentences = np.load(version / "sentences.npy", allow_pickle=False).astype(np.float32)
        starts = np.load(version / "sentence_rows.npy", allow_pickle=False)
        self.known = dict(zip(texts, vectors))
        self.known_sentences = {t: sentences[starts[i] : starts[i + 1]] for i, t in enumerate(texts)}
        self.placeholder = np.eye(1, self.dimensions, dtype=np.float32)[0]
        self.texts: list[str] = []
        self.missing = 0

    def encode(self, texts, progress=None) -> np.ndarray:
        self.texts.extend(texts)
        self.missing += sum(t not in self.known for t in texts)
        if progress is not None:
            progress(len(texts))
        rows = [self.known.get(t, self.placeholder) for t in texts]
        return np.array(rows, dtype=np.float32).reshape(len(texts), self.dimensions)

    def encode_spans(self, texts, spans, progress=None):
        vectors = self.encode(texts, progress)
        known = [self.known_sentences.get(t) for t in texts]
        fits = [k is not None and len(k) == len(s) for k, s in zip(known, spans)]
        self.missing += sum(t in self.known and not fit for t, fit in zip(texts, fits))  # answer sentences differ
        return vectors, [k if fit else np.tile(self.placeholder, (len(s), 1)) for k, s, fit in zip(known, spans, fits)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="the older index folder (holding CURRENT)")
    parser.add_argument("--corpus", type=Path, required=True, help="the corpus it was built from")
    parser.add_argument("--index", type=Path, required=True, help="the index folder to build")
    args = parser.parse_args()
    replay = Replay(embedder_for(Config.resolve()), args.source)
    report = build(args.corpus, args.index, replay)
    print(
        f"{report.passages:,} passages from {report.documents:,} documents in {report.seconds:.1f} s, "
        f"{replay.missing:,} without a vector in {args.source} -> {report.index_path}"
    )
    if replay.missing:
        raise SystemExit("some passages got a placeholder vector: this index is not a real build")


if __name__ == "__main__":
    main()
