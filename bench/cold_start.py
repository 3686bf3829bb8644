"""Time from `make run` on a fresh clone to the first answer in a browser.

Clones this repository into a temporary folder (no .venv, no index), runs
`make run` there on a free port, and measures: until Streamlit answers its
health check, and until a question typed into headless Chromium shows its
cited answer. Pass --reuse-venv to copy this checkout's .venv (measures the
index build and app start without the package install).

    python bench/cold_start.py [--reuse-venv]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from app_server import free_port, wait_healthy
from report import record, table

REPO = Path(__file__).resolve().parent.parent
QUESTION = "how long does a broken vertebra take to heal?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse-venv", action="store_true", help="copy .venv instead of installing")
    args = parser.parse_args()

    clone = Path(tempfile.mkdtemp()) / "kb"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    if args.reuse_venv:
        subprocess.run(["cp", "-a", str(REPO / ".venv"), str(clone / ".venv")], check=True)
    port = free_port()
    began = time.monotonic()
    server = subprocess.Popen(
        ["make", "run", f"PORT={port}"],
        cwd=clone,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://localhost:{port}"
        if not wait_healthy(url, server, timeout=3600):
            raise SystemExit("make run exited (or took an hour) before the app started")
        ready = time.monotonic() - began
        answered = ready + first_answer(url)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
        shutil.rmtree(clone.parent, ignore_errors=True)
    mode = "copied .venv" if args.reuse_venv else "fresh install"
    record(
        f"Cold start ({mode})",
        table(
            ["step", "seconds from `make run`"],
            [["app answers health check", f"{ready:.1f}"], ["first answer visible in the browser", f"{answered:.1f}"]],
        ),
    )


def first_answer(url: str) -> float:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        began = time.monotonic()
        page.goto(url)
        box = page.get_by_label("Your question")
        box.wait_for(timeout=120_000)
        box.fill(QUESTION)
        box.press("Enter")
        page.get_by_text("vertebral fractures take weeks to heal", exact=False).first.wait_for(timeout=120_000)
        elapsed = time.monotonic() - began
        browser.close()
    return elapsed


if __name__ == "__main__":
    main()
