"""Questions under load: many clients of the library at once, and several browser sessions against the app.

Library: one loaded index and model shared by every client thread (as in the
app, where all sessions share the cached searcher), asking the questions of
corpus/questions.jsonl in a loop. The baseline, in the same run, is a single
client asking every question once in turn; its answers are the reference. An
error is an exception or an answer that differs from the reference (a
thread-safety fault would show as wrong hits before it showed as a crash).

App: `streamlit run app.py` on a free port over the same index, then one and
then several concurrent headless Chromium sessions, each typing on-topic
questions and waiting for the expected answering text; an error is a question
whose answer does not appear within 60 s, or an exception or error box.

    python bench/load.py --index DIR [--seconds 60] [--clients 16] [--browsers 4] [--browser-questions 4]
                         [--questions N] [--torch-threads N]

Build the index first: python -m ingest --index DIR
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import app_server
from report import record, table

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@dataclass
class Run:
    """Latencies (seconds) and errors of one load level."""

    label: str
    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def row(self, baseline: Run | None) -> list:
        done = len(self.latencies)
        rate = done / self.seconds if self.seconds else 0.0
        p50, p95 = percentile(self.latencies, 50), percentile(self.latencies, 95)
        ratio = (
            f"{rate / (len(baseline.latencies) / baseline.seconds):.2f}x"
            if baseline and baseline.latencies
            else "1.00x"
        )
        p95_ratio = f"{p95 / percentile(baseline.latencies, 95):.2f}x" if baseline and baseline.latencies else "1.00x"
        return [
            self.label,
            self.clients,
            done,
            len(self.errors),
            f"{rate:.2f}",
            f"{p50 * 1000:.0f}",
            f"{p95 * 1000:.0f}",
            ratio,
            p95_ratio,
        ]


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def read_questions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def signature(answer) -> tuple:
    return answer.answered, tuple((h.passage.id, round(h.score, 5), h.answer.start, h.answer.end) for h in answer.hits)


def single_client(searcher, questions: list[str]) -> tuple[Run, dict]:
    """Every question once, in turn: the baseline latencies and the reference answers."""
    run, expected = Run("library, 1 thread", 1), {}
    began = time.monotonic()
    for question in questions:
        start = time.perf_counter()
        expected[question] = signature(searcher.search(question, k=5))
        run.latencies.append(time.perf_counter() - start)
    run.seconds = time.monotonic() - began
    return run, expected


def library_load(searcher, questions: list[str], expected: dict, clients: int, seconds: float, label: str) -> Run:
    """`clients` threads asking in a loop for `seconds`, each starting at a different question."""
    run = Run(label, clients)
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(number: int) -> None:
        turn = number * 7
        while time.monotonic() < stop:
            question = questions[turn % len(questions)]
            turn += 1
            began = time.perf_counter()
            try:
                got = signature(searcher.search(question, k=5))
                error = None if got == expected[question] else f"different answer to {question!r}"
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            elapsed = time.perf_counter() - began
            with lock:
                run.latencies.append(elapsed)
                if error:
                    run.errors.append(error)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.seconds = time.monotonic() - began
    return run


def start_app(index: Path, corpus: Path) -> tuple[subprocess.Popen, str]:
    env = {
        **os.environ,
        "KB_INDEX": str(index),
        "KB_CORPUS": str(corpus),
        "HF_HUB_OFFLINE": "1",
        "KB_ANSWERS_KEPT": "0",
    }
    try:
        return app_server.start_app(env, timeout=120)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None


async def browser_session(browser, url: str, items: list[dict], run: Run) -> None:
    """One visitor: open the page, then type each question and wait for its answering text."""
    context = await browser.new_context()
    page = await context.new_page()
    try:
        await page.goto(url)
        box = page.get_by_label("Your question")
        await box.wait_for(timeout=120_000)
        # The first question warms the app's caches for everyone; time it anyway.
        for item in items:
            began = time.perf_counter()
            await box.fill(item["query"])
            await box.press("Enter")
            try:
                await page.get_by_text(item["answer"], exact=False).first.wait_for(timeout=60_000)
            except Exception:
                run.errors.append(f"no answer within 60 s to {item['query']!r}")
                continue
            run.latencies.append(time.perf_counter() - began)
            broken = await page.locator("[data-testid='stException'], [data-testid='stAlertContentError']").count()
            if broken:
                run.errors.append(f"error shown after {item['query']!r}")
    finally:
        await context.close()


async def app_load(url: str, items: list[dict], sessions: int, per_session: int, label: str) -> Run:
    from playwright.async_api import async_playwright

    run = Run(label, sessions)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        began = time.monotonic()
        await asyncio.gather(
            *[
                browser_session(
                    browser, url, [items[(s * per_session + i) % len(items)] for i in range(per_session)], run
                )
                for s in range(sessions)
            ]
        )
        run.seconds = time.monotonic() - began
        await browser.close()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--index", type=Path, default=REPO / "data" / "index", help="index folder (built with the real model)"
    )
    parser.add_argument("--corpus", type=Path, default=REPO / "corpus", help="corpus folder holding questions.jsonl")
    parser.add_argument("--seconds", type=float, default=60.0, help="duration of the concurrent library run")
    parser.add_argument("--questions", type=int, default=0, help="use only the first N questions (0: all)")
    parser.add_argument("--torch-threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent library clients (threads)")
    parser.add_argument("--browsers", type=int, default=4, help="concurrent browser sessions (0: skip the app)")
    parser.add_argument("--browser-questions", type=int, default=4, help="questions per browser session")
    args = parser.parse_args()

    from index.config import Config, one_thread_per_question
    from index.embed.registry import embedder_for
    from index.search.searcher import Searcher
    from index.store.reader import load

    one_thread_per_question()  # as the app does, once per process
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    items = read_questions(args.corpus / "questions.jsonl")
    questions = [item["query"] for item in items][: args.questions or None]
    embedder = embedder_for(Config.resolve())
    # Kept answers off, here and in the app: the clients ask the same questions in a loop.
    searcher = Searcher(load(args.index, model=embedder.name), embedder, answers_kept=0)
    searcher.search("warm up the model")
    baseline, expected = single_client(searcher, questions)
    runs = [baseline]
    runs.append(
        library_load(searcher, questions, expected, args.clients, args.seconds, f"library, {args.clients} threads")
    )
    rows = [runs[0].row(None), runs[1].row(runs[0])]
    if args.browsers:
        on_topic = [item for item in items if item["answer"]]
        server, url = start_app(args.index, args.corpus)
        try:
            asyncio.run(app_load(url, on_topic, 1, 1, "warm-up"))  # the app loads its model on the first question
            single = asyncio.run(app_load(url, on_topic, 1, args.browser_questions, "app, 1 browser session"))
            many = asyncio.run(
                app_load(url, on_topic, args.browsers, args.browser_questions, f"app, {args.browsers} browser sessions")
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
        runs += [single, many]
        rows += [single.row(None), many.row(single)]
    errors = [f"- {run.label}: {error}" for run in runs for error in dict.fromkeys(run.errors)]
    body = table(
        [
            "load",
            "clients",
            "questions",
            "errors",
            "questions/s",
            "p50 ms",
            "p95 ms",
            "throughput vs 1 client",
            "p95 vs 1 client",
        ],
        rows,
    )
    body += "\n\nErrors: none." if not errors else "\n\nErrors (distinct):\n" + "\n".join(errors[:20])
    body += (
        f"\n\nLibrary clients share one loaded index and model; an answer counts as an error if it differs "
        f"from the single client's. {os.cpu_count()} cores shared with other work: compare rows, not machines."
    )
    record("Questions under load", body)
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
