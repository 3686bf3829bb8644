"""Time to the first answer and resident memory with a million passages, as a user starts a fresh process.

The index is built once (cached in `--index`) without running the model on
its passages, and published through the store's real `publish`, so the BM25
index, the passages file, the IVF shards and the manifest are what a real
build writes:

- texts: each passage is a run of 2 to 5 consecutive sentences of one SciFact
  abstract (/work/shared/eval/scifact) with one sentence of another abstract
  put in at random, so texts are distinct and BM25 sees real words in real
  proportions;
- vectors: grown from a real SciFact index's vectors as `bench/scale.py` does
  (a real vector plus Gaussian noise as long as the median distance between
  real neighbours, renormalised); each passage gets one answer-sentence vector
  per answer candidate (`index.search.sentences.answer_candidates`), grown the same
  way from the real answer-sentence vectors.

Then a fresh Python process does what a user's does: import the library, load
the model (`index.embed.registry.embedder_for`), load the index (`index.store.reader.load`)
and answer one SciFact claim with `Searcher.search`. The time from just before
the process is started to that answer is split into its parts; peak and
current resident memory are read after it, and the warm p50 of `Searcher.search`
over the next SciFact test claims. The best of `--runs` processes is reported.

    python bench/first_answer.py [--index data/million] [--size 1000000] [--source data/dev/scifact]
"""

from __future__ import annotations

import time

STARTED = time.time()  # before the library and numpy are imported: part of what a user waits for

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

GOAL_SECONDS = 2.0
GOAL_MB = 1024
SOURCE = "million.jsonl"


def abstracts(corpus: Path) -> list[list[str]]:
    """Each SciFact abstract's sentences (the title first)."""
    from index.search.sentences import split_sentences

    out = []
    with open(corpus, encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            text = record["text"]
            sentences = [text[a:b] for a, b in split_sentences(text)]
            out.append([record["title"], *sentences])
    return out


def synthetic_texts(corpus: Path, size: int, rng) -> list[str]:
    """`size` distinct passages recombined from real SciFact sentences."""
    docs = abstracts(corpus)
    pool = [s for doc in docs for s in doc]
    texts, seen = [], set()
    while len(texts) < size:
        doc = docs[rng.integers(len(docs))]
        run = int(rng.integers(2, 6))
        begin = int(rng.integers(0, max(1, len(doc) - run + 1)))
        sentences = doc[begin : begin + run]
        sentences.insert(int(rng.integers(0, len(sentences) + 1)), pool[rng.integers(len(pool))])
        text = " ".join(sentences)
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


def real_vectors(source: Path):
    """A real index's passage and answer-sentence vectors (its files are read directly: format 2 to 4)."""
    import faiss
    import numpy as np

    version = source / (source / "CURRENT").read_text(encoding="utf-8").strip()
    dense = faiss.read_index(str(version / "vectors.faiss"))
    passages = dense.reconstruct_n(0, dense.ntotal).astype(np.float32)
    sentences = np.load(version / "sentences.npy").astype(np.float32)
    unit = [v / np.linalg.norm(v, axis=1, keepdims=True) for v in (passages, sentences)]
    return unit[0], unit[1]


def grown_sentences(real, count: int, distance: float, rng):
    """`count` float16 answer-sentence vectors: real ones plus noise, in blocks to bound memory."""
    import numpy as np

    out = np.empty((count, real.shape[1]), dtype=np.float16)
    scale = distance / np.sqrt(real.shape[1])
    for begin in range(0, count, 200_000):
        end = min(count, begin + 200_000)
        block = real[rng.integers(0, len(real), end - begin)] + rng.normal(
            scale=scale, size=(end - begin, real.shape[1])
        ).astype(np.float32)
        out[begin:end] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def build(index_dir: Path, size: int, source: Path, corpus: Path) -> None:
    import numpy as np
    from scale import expand, neighbour_distance

    from index.config import Config
    from index.embed.registry import embedder_for
    from index.records import DocumentInfo, Location, Passage, Settings, text_id
    from index.search.sentences import answer_candidates
    from index.store.pointer import publish_lock
    from index.store.version import BuildInfo, SentenceVectors, SourceFile, VersionContent
    from index.store.writer import publish

    rng = np.random.default_rng(0)
    began = time.perf_counter()
    texts = synthetic_texts(corpus, size, rng)
    counts = [len(answer_candidates(t)) for t in texts]
    print(f"{len(texts):,} texts, {sum(counts):,} answer candidates in {time.perf_counter() - began:.0f} s", flush=True)
    real, real_sentences = real_vectors(source)
    distance = neighbour_distance(real, rng)
    vectors = expand(real, size, distance, rng)
    sentences = SentenceVectors(
        grown_sentences(real_sentences, sum(counts), distance, rng), SentenceVectors.starts_for(counts)
    )
    print(f"vectors grown (neighbour distance {distance:.3f}) at {time.perf_counter() - began:.0f} s", flush=True)
    passages = [Passage(text_id(t), t, (Location(str(i), SOURCE, 0, len(t), 1),)) for i, t in enumerate(texts)]
    documents = [DocumentInfo(str(i), SOURCE, "", len(t), 1) for i, t in enumerate(texts)]
    model = embedder_for(Config.resolve()).name
    index_dir.mkdir(parents=True, exist_ok=True)
    with publish_lock(index_dir):
        publish(
            index_dir,
            VersionContent(
                passages=passages,
                vectors=vectors,
                sentences=sentences,
                documents=documents,
                sources={SOURCE: SourceFile(0, 0, "")},
                texts=texts,
            ),
            BuildInfo(model=model, settings=Settings(), corpus=f"synthetic from {corpus}"),
            timings=lambda step, seconds: print(f"publish {step}: {seconds:.0f} s", flush=True),
        )
    print(f"built {size:,} passages in {time.perf_counter() - began:.0f} s -> {index_dir}", flush=True)


def claims(data: Path) -> list[str]:
    from index.evaluate import read_qrels, read_queries

    text = read_queries(data / "queries.jsonl")
    return [text[q] for q in read_qrels(data / "qrels" / "test.tsv")]


def memory_mb() -> dict[str, float]:
    """This process's resident memory now: all of it, anonymous (heap) and file-backed (mapped files, libraries)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {key: int(status[key].split()[0]) / 1024 for key in ("VmRSS", "RssAnon", "RssFile")}


def serve(index_dir: Path, questions: list[str]) -> None:
    """The fresh process: what a user's program does before and at its first answer, timed."""
    import resource

    from index.config import Config, one_thread_per_question
    from index.embed.registry import embedder_for
    from index.search.searcher import Searcher
    from index.store.reader import load

    marks = {"imported": time.time()}
    one_thread_per_question()  # as the entry points do: it imports FAISS and torch
    marks["threads"] = time.time()
    embedder = embedder_for(Config.resolve())
    embedder.encode(["warm up"])  # the model loads on first use: load it here, so each part is what it says
    marks["model"] = time.time()
    at_model = memory_mb()
    stored = load(index_dir, embedder.name)
    searcher = Searcher(stored, embedder)
    marks["index"] = time.time()
    first = searcher.search(questions[0])
    marks["answered"] = time.time()
    memory = memory_mb()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = []
    for question in questions[1:]:
        start = time.perf_counter()
        searcher.search(question)
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    after = memory_mb()
    result = {
        "started": STARTED,
        "marks": marks,
        "memory": memory,
        "at_model": at_model,
        "peak_mb": peak_mb,
        "after_warm": after,
        "p50_ms": 1000 * seconds[len(seconds) // 2],
        "warm_questions": len(seconds),
        "hits": len(first.hits),
        "passages": stored.manifest.passages,
        "vector_index": stored.manifest.vector_index,
    }
    print(json.dumps(result))


def one_run(index_dir: Path, data: Path, questions: int) -> dict:
    command = [sys.executable, __file__, "--serve", str(index_dir), "--data", str(data), "--questions", str(questions)]
    launched = time.time()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the measured process failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    marks = result["marks"]
    result["parts"] = {
        "imports": marks["imported"] - launched,  # interpreter start and imports
        "threads": marks["threads"] - marks["imported"],
        "model": marks["model"] - marks["threads"],
        "index": marks["index"] - marks["model"],
        "question": marks["answered"] - marks["index"],
    }
    result["total"] = marks["answered"] - launched
    return result


def uptime() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__().replace("'", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("data/million"), help="built here once, reused after")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--source", type=Path, default=Path("data/dev/scifact"), help="a real SciFact index")
    parser.add_argument("--data", type=Path, default=Path("../shared/eval/scifact"))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--questions", type=int, default=51, help="the first is timed cold, the rest warm")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, claims(args.data)[: args.questions])
        return

    from index.store.pointer import current_version
    from index.store.reader import manifest_of

    version = current_version(args.index) if (args.index / "CURRENT").exists() else None
    if version is None or manifest_of(version).passages != args.size:
        build(args.index, args.size, args.source, args.data / "corpus.jsonl")
    if args.build_only:
        return
    load_before = uptime()
    runs = [one_run(args.index, args.data, args.questions) for _ in range(args.runs)]
    load_after = uptime()
    for run in runs:
        print(json.dumps(run), flush=True)
    best = min(runs, key=lambda r: r["total"])
    parts = best["parts"]
    from report import record, table

    met_time = best["total"] <= GOAL_SECONDS
    met_memory = best["peak_mb"] <= GOAL_MB
    met_own = best["memory"]["RssAnon"] <= GOAL_MB
    without_torch = best["total"] - parts["threads"]
    body = table(
        [
            "passages",
            "first answer s",
            "imports s",
            "set threads s",
            "model load s",
            "index load s",
            "first question s",
            "peak RSS MB",
            "RSS MB at first answer (anon + file)",
            "RSS MB after warm questions (anon + file)",
            "warm p50 ms",
        ],
        [
            [
                f"{best['passages']:,}",
                f"{best['total']:.2f}",
                f"{parts['imports']:.2f}",
                f"{parts['threads']:.2f}",
                f"{parts['model']:.2f}",
                f"{parts['index']:.2f}",
                f"{parts['question']:.2f}",
                f"{best['peak_mb']:.0f}",
                "{VmRSS:.0f} ({RssAnon:.0f} + {RssFile:.0f})".format(**best["memory"]),
                "{VmRSS:.0f} ({RssAnon:.0f} + {RssFile:.0f})".format(**best["after_warm"]),
                f"{best['p50_ms']:.1f}",
            ]
        ],
    )
    body += (
        f"\n\nGoal (issue 13): first answer ≤ {GOAL_SECONDS:g} s: {'met' if met_time else 'not met'} "
        f"({best['total']:.2f} s; {without_torch:.2f} s without the `one_thread_per_question` step, most of which "
        f"is importing torch, which the default ONNX backend does not use); resident memory ≤ 1 GB: peak RSS "
        f"{best['peak_mb']:.0f} MB, {'met' if met_memory else 'not met'}; the process's own memory (RssAnon) "
        f"{best['memory']['RssAnon']:.0f} MB, {'met' if met_own else 'not met'}. "
        f"Best of {len(runs)} fresh processes (first answer: "
        + ", ".join(f"{r['total']:.2f} s" for r in runs)
        + f"), each timed from just before it is started to `Searcher.search`'s first answer (a SciFact test claim): "
        f"interpreter start and imports, `one_thread_per_question` (as every entry point calls it: it imports "
        f"torch), model load (`embedder_for`, with one warm-up text), index load "
        f"(`index.store.reader.load`, {best['vector_index']} memory-mapped) and the first question. Peak RSS is "
        f"`getrusage` ru_maxrss after the first answer; "
        f"anon is the process's own heap (RssAnon), file is pages of mapped files and libraries (RssFile: "
        f"shared with the page cache, given back under memory pressure). With the model loaded and before the "
        f"index, RSS was {best['at_model']['VmRSS']:.0f} MB ({best['at_model']['RssAnon']:.0f} + "
        f"{best['at_model']['RssFile']:.0f}). Warm p50 over those {best['warm_questions']} SciFact test claims, "
        f"hybrid with answer sentences. Index: {best['passages']:,} synthetic passages, each 2-5 consecutive "
        f"sentences of a SciFact abstract plus one sentence of another, with vectors grown from a real SciFact "
        f"index's vectors (as `bench/scale.py`), published by `index.store.writer.publish` (format 4). "
        f"Load average (1, 5, 15 min) before {load_before}, after {load_after}."
    )
    record("A million passages: time to the first answer", body)


if __name__ == "__main__":
    main()
