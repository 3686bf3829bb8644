"""The app in a real headless Chromium (Debian's), driven by Playwright.

Starts `streamlit run app.py` on a free localhost port over a copy of the
bundled corpus and the real model, then acts as a person would: asks, reads
the highlighted citation, uploads a document and finds it, and checks that a
document carrying a script shows as text.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.app_server import start_app
from tests.helpers import REPO

CHROMIUM = Path("/usr/bin/chromium")
# A missing browser fails this tier loudly (make test must not pass without it); deselect it with -m "not browser".
pytestmark = [pytest.mark.browser, pytest.mark.model]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    corpus = root / "corpus"
    corpus.mkdir()
    shutil.copy(REPO / "corpus" / "back-and-hip-health.txt", corpus)
    env = {**os.environ, "KB_CORPUS": str(corpus), "KB_INDEX": str(root / "index"), "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [sys.executable, "-m", "ingest", "--corpus", str(corpus), "--index", str(root / "index")],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    try:
        server, url = start_app(env, timeout=90)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield url
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), "
            'or leave the browser tests out with -m "not browser"',
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(app_url)
    page.get_by_label("Your question").wait_for(timeout=60_000)
    yield page
    context.close()


def ask(page, question: str) -> None:
    box = page.get_by_label("Your question")
    box.wait_for(state="visible", timeout=90_000)  # the page reruns after an upload; a busy machine is slow
    box.fill(question, timeout=90_000)
    box.press("Enter")


def test_question_shows_cited_passage_with_highlighted_sentence(page, app_url):
    ask(page, "how long does a broken vertebra take to heal?")
    sentence = page.get_by_text("vertebral fractures take weeks to heal", exact=False).first
    sentence.wait_for(timeout=90_000)
    assert page.get_by_text("back-and-hip-health.txt, line 5").first.is_visible()
    highlighted = page.locator("span", has_text="vertebral fractures take weeks to heal").last
    colour = highlighted.evaluate("el => getComputedStyle(el).backgroundColor")
    assert colour not in ("rgba(0, 0, 0, 0)", "transparent"), colour
    assert "q=how+long+does+a+broken+vertebra" in page.url or "q=how%20long" in page.url
    page.screenshot(path=str(Path(os.environ.get("KB_SCREENSHOT", "/tmp/kb-answer.png"))), full_page=False)


def test_off_topic_question_says_no(page):
    ask(page, "What is the capital of France?")
    page.get_by_text("No passage in the collection answers this.").wait_for(timeout=90_000)


def upload(page, name: str, content: bytes) -> None:
    """Upload a file and wait until the rebuild it starts has published.

    The app's build job is shared by every session, so a new page can already
    show the previous upload's "Index updated": wait for a different one.
    """
    status = page.get_by_text("Index updated")
    before = status.first.inner_text() if status.count() else None
    page.locator("input[type=file]").set_input_files(
        files=[{"name": name, "mimeType": "text/plain", "buffer": content}]
    )
    page.get_by_role("button", name="Add to the knowledge base").click()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if status.count() and status.first.inner_text() != before:
            return
        page.wait_for_timeout(500)
    pytest.fail(f"no new 'Index updated' within 120 s after uploading {name}")


def test_uploaded_document_can_be_found(page):
    upload(
        page,
        "rowing.txt",
        b"Indoor rowing machines strengthen the posterior chain and rarely hurt the lower back when the stroke starts from the legs.",
    )
    ask(page, "Does indoor rowing hurt the lower back?")
    page.get_by_text("uploads/rowing.txt, line 1").wait_for(timeout=90_000)


def test_script_in_document_shows_as_text(page):
    upload(
        page,
        "hostile.md",
        b"Hostile zebra note <script>alert(1)</script> and [click me](javascript:alert(2)) about zebra stripes.",
    )
    ask(page, "hostile zebra note stripes")
    page.get_by_text("<script>alert(1)</script>", exact=False).first.wait_for(timeout=90_000)
    assert page.locator("a[href^='javascript']").count() == 0
    page.wait_for_timeout(1000)
    assert page.dialogs == []


def test_titled_record_is_highlighted_not_shown_as_brackets(page):
    """Issue 16 D7: the answer starts with the record's title, a blank line above its sentence."""
    record = (
        b'{"_id": "okapi-1", "title": "Okapi", "text": "Okapi are relatives of giraffes that live in the rainforest."}'
    )
    upload(page, "okapi.jsonl", record)
    ask(page, "What animals are okapi related to?")
    page.get_by_text("uploads/okapi.jsonl [okapi-1], line 1").first.wait_for(timeout=90_000)
    highlighted = page.locator("span", has_text="Okapi are relatives of giraffes").last
    colour = highlighted.evaluate("el => getComputedStyle(el).backgroundColor")
    assert colour not in ("rgba(0, 0, 0, 0)", "transparent"), colour
    # Case matters: the citation holds "[okapi-1]".
    assert page.get_by_text(re.compile(r"\[Okapi|rainforest\.\]")).count() == 0
