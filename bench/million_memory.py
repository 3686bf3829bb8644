"""Resident memory over 1,000 questions at a million passages: large files read by row against memory-mapped.

The index is `bench/first_answer.py`'s (built into `--index` once, reused
after). Each mode runs in its own fresh process, which loads the model and
the index as a user's program does and answers SciFact claims one after
another with `Searcher.search` (hybrid, answer sentences), reading its own
/proc/self/status after 1, 51 and 1,000 questions: VmRSS split into RssAnon
(the process's own memory) and RssFile (pages of mapped files and
libraries), and VmHWM (peak VmRSS). At the end it adds up, from
/proc/self/smaps, the resident pages of each of the index's mapped files.

- rows: the library as it is (`index.rowfile`: vector copy, answer-sentence
  vectors, BM25 postings, passages and texts read by row with `pread`);
- mapped (baseline): the same files memory-mapped, as the store read them
  before (`index.rowfile.MAPPED = True`).

`--map-below BYTES` sets `index.rowfile.MAP_BELOW` (files smaller than it are
memory-mapped in the rows mode too): 0 reads every file by row, which is how
the cost of a read by row is measured on a small index.

Both answer every question identically (a hash of every answer is compared).
The warm question's time is measured apart, in a third process that loads the
index both ways and asks each question of both in turn (which goes first
alternates), so that the load of a shared machine falls on both alike: p50 over
questions 2 to N of the wall time and of the process's CPU time (user and
system, `time.process_time`: what waiting for a shared core leaves out), and
the median of each question's CPU time read by row less memory-mapped.

    python bench/million_memory.py [--index data/million] [--source data/dev/scifact] [--questions 1000]
        [--size 1000000] [--map-below BYTES]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

MODES = ("mapped", "rows")  # baseline first
INTERLEAVED = "interleaved"
GOAL_MB = 1024
MARKS = (1, 51, 1000)


def status_mb() -> dict[str, float]:
    """This process's resident memory now (VmRSS, RssAnon, RssFile) and its peak (VmHWM), in MB."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {key: int(status[key].split()[0]) / 1024 for key in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}


def mapped_mb(folder: Path) -> dict[str, float]:
    """Resident MB of each file of `folder` that this process maps (from /proc/self/smaps)."""
    found: dict[str, float] = {}
    path = None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) >= 5 and "-" in fields[0] and ":" in fields[3]:  # a mapping's header line
            path = Path(fields[5]) if len(fields) == 6 else None
        elif fields and fields[0] == "Rss:" and path is not None and path.is_relative_to(folder):
            name = path.relative_to(folder).as_posix()
            found[name] = found.get(name, 0.0) + int(fields[1]) / 1024
    return {name: mb for name, mb in sorted(found.items()) if mb}


def questions(data: Path, count: int) -> list[str]:
    """The first `count` SciFact claims (test and train), cycled if there are fewer."""
    from index.evaluate import read_queries

    claims = list(read_queries(data / "queries.jsonl").values())
    return [claims[i % len(claims)] for i in range(count)]


def searcher_for(index_dir: Path, embedder, mapped: bool):
    """A `Searcher` over the index, its large files memory-mapped or read by row."""
    from index import rowfile
    from index.search.searcher import Searcher
    from index.store.reader import load

    rowfile.MAPPED = mapped
    try:
        return Searcher(load(index_dir, embedder.name), embedder)
    finally:
        rowfile.MAPPED = False


def serve(index_dir: Path, data: Path, count: int, mode: str, map_below: int) -> None:
    """The fresh process: load the model and the index, answer `count` claims, report what `mode` measures."""
    from index import rowfile
    from index.config import Config, one_thread_per_question
    from index.embed.registry import embedder_for

    rowfile.MAP_BELOW = map_below
    one_thread_per_question()
    embedder = embedder_for(Config.resolve())
    embedder.encode(["warm up"])
    if mode == INTERLEAVED:
        print(json.dumps(interleaved(index_dir, embedder, questions(data, count))))
        return
    searcher = searcher_for(index_dir, embedder, mapped=mode == "mapped")
    loaded = status_mb()
    answers, marks = hashlib.sha256(), {}
    for number, question in enumerate(questions(data, count), start=1):
        answers.update(repr(searcher.search(question)).encode())
        if number in MARKS or number == count:
            marks[number] = status_mb()
    stored = searcher.stored
    result = {
        "mode": mode,
        "loaded": loaded,
        "marks": marks,
        "files": mapped_mb(stored.path.resolve()),
        "answers": answers.hexdigest(),
        "passages": stored.manifest.passages,
    }
    print(json.dumps(result))


def interleaved(index_dir: Path, embedder, asked: list[str]) -> dict:
    """Each question asked of the index read both ways in turn; p50 of each over questions 2 to N."""
    import numpy as np

    searchers = {mode: searcher_for(index_dir, embedder, mapped=mode == "mapped") for mode in MODES}
    wall: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
    answers = {mode: hashlib.sha256() for mode in MODES}
    for number, question in enumerate(asked):
        for mode in MODES if number % 2 else MODES[::-1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            answer = searchers[mode].search(question)
            wall[mode].append(time.perf_counter() - start)
            cpu[mode].append(time.process_time() - start_cpu)
            answers[mode].update(repr(answer).encode())
    warm = slice(1, None) if len(asked) > 1 else slice(None)
    return {
        "mode": INTERLEAVED,
        "p50_ms": {mode: 1000 * float(np.median(wall[mode][warm])) for mode in MODES},
        "cpu_p50_ms": {mode: 1000 * float(np.median(cpu[mode][warm])) for mode in MODES},
        "cpu_difference_ms": 1000 * float(np.median(np.subtract(cpu["rows"][warm], cpu["mapped"][warm]))),
        "answers": {mode: h.hexdigest() for mode, h in answers.items()},
    }


def one_run(index_dir: Path, data: Path, count: int, mode: str, map_below: int) -> dict:
    command = [sys.executable, __file__, "--serve", str(index_dir), "--data", str(data), "--questions", str(count)]
    command += ["--mode", mode, "--map-below", str(map_below)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the measured process ({mode}) failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if "marks" in result:
        result["marks"] = {int(k): v for k, v in result["marks"].items()}
    return result


def load_average() -> str:
    return "[" + ", ".join(Path("/proc/loadavg").read_text().split()[:3]) + "]"


def cell(memory: dict[str, float]) -> str:
    return "{VmRSS:.0f} ({RssAnon:.0f} + {RssFile:.0f})".format(**memory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("data/million"), help="built here once, reused after")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--source", type=Path, default=Path("data/dev/scifact"), help="a real SciFact index")
    parser.add_argument("--data", type=Path, default=Path("../shared/eval/scifact"))
    parser.add_argument("--questions", type=int, default=MARKS[-1])
    parser.add_argument("--map-below", type=int, default=None, help="index.rowfile.MAP_BELOW (default: as is)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=(*MODES, INTERLEAVED), help=argparse.SUPPRESS)
    args = parser.parse_args()
    from index import rowfile

    map_below = rowfile.MAP_BELOW if args.map_below is None else args.map_below
    if args.serve:
        serve(args.serve, args.data, args.questions, args.mode, map_below)
        return

    from first_answer import build

    from index.store.pointer import current_version
    from index.store.reader import manifest_of

    version = current_version(args.index) if (args.index / "CURRENT").exists() else None
    if version is None or manifest_of(version).passages != args.size:
        build(args.index, args.size, args.source, args.data / "corpus.jsonl")
    before = load_average()
    runs = {mode: one_run(args.index, args.data, args.questions, mode, map_below) for mode in (*MODES, INTERLEAVED)}
    after = load_average()
    for run in runs.values():
        print(json.dumps(run), flush=True)
    base, rows, speed = runs["mapped"], runs["rows"], runs[INTERLEAVED]
    p50, cpu = speed["p50_ms"], speed["cpu_p50_ms"]
    marks = sorted(base["marks"])
    last = marks[-1]
    headers = ["reading", "RSS MB after loading (anon + file)"]
    headers += [f"RSS MB after {n:,} question{'s' * (n != 1)} (anon + file)" for n in marks]
    headers += [f"peak RSS MB (VmHWM) after {last:,}", "warm p50 ms: wall, CPU", "index files mapped, resident MB"]
    table_rows = []
    for mode, name in zip(MODES, ("memory-mapped (baseline)", "read by row (`index.rowfile`)")):
        run = runs[mode]
        files = ", ".join(f"{f} {mb:.0f}" for f, mb in sorted(run["files"].items(), key=lambda i: -i[1]) if mb >= 1)
        table_rows.append(
            [name, cell(run["loaded"])]
            + [cell(run["marks"][n]) for n in marks]
            + [f"{run['marks'][last]['VmHWM']:.0f}", f"{p50[mode]:.1f}, {cpu[mode]:.1f}", files or "none"]
        )
    from report import record, table

    same = base["answers"] == rows["answers"] == speed["answers"]["mapped"] == speed["answers"]["rows"]
    rss, peak = rows["marks"][last]["VmRSS"], rows["marks"][last]["VmHWM"]
    body = table(headers, table_rows)
    small = (
        f"Read by row, files under {map_below:,} bytes (`index.rowfile.MAP_BELOW`) are memory-mapped all the same."
        if map_below
        else "Read by row, every file is (`--map-below 0`)."
    )
    body += (
        f"\n\nGoal (issue 26): resident memory under 1 GB after {last:,} questions: "
        f"{'met' if rss < GOAL_MB else 'not met'} ({rss:.0f} MB, peak {peak:.0f} MB; memory-mapped "
        f"{base['marks'][last]['VmRSS']:.0f} MB, {rss / base['marks'][last]['VmRSS']:.2f}×). Warm p50 "
        f"{p50['rows']:.1f} ms against {p50['mapped']:.1f} ms memory-mapped ({p50['rows'] / p50['mapped']:.2f}×), "
        f"CPU time {cpu['rows']:.1f} ms against {cpu['mapped']:.1f} ms ({cpu['rows'] / cpu['mapped']:.2f}×; "
        f"the median question took {speed['cpu_difference_ms']:+.2f} ms of CPU read by row); a third process asks "
        f"each question of both in turn. Every answer the same in both: "
        f"{'yes' if same else 'NO'}. "
        f"{rows['passages']:,} passages (`bench/first_answer.py`'s index); the first {last:,} SciFact claims "
        f"(test and train) asked one after another with `Searcher.search` in one fresh process per mode, after "
        f"loading the model and the index; memory from /proc/self/status (RssAnon: the process's own; RssFile: "
        f"mapped files and libraries); the last column adds up /proc/self/smaps Rss of the index's files at the "
        f"end. {small} "
        f"The index files were in the page cache throughout (built earlier on this machine). Load average "
        f"(1, 5, 15 min) before {before}, after {after}; 2 cores shared with other work."
    )
    record(f"Speed at the limit: resident memory over {last:,} questions at {rows['passages']:,} passages", body)
    if not same:
        raise SystemExit("the two modes answered differently")


if __name__ == "__main__":
    main()
