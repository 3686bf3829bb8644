"""Issue 24 in a real headless Chromium: a 👍 that counts, a refused question on the Gaps page, link leftovers said,
and every page one tap away on a phone.

The app is started as tests/test_browser.py starts it (its fixtures, a server of this module's own).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse

import pytest

from index.feedback import FEEDBACK, Thumb, read_votes
from index.gaps import read_log
from tests.helpers import REPO
from tests.test_browser import HEAL, answer_box, ask, browser, open_page, running_app  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.model]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
REFUSED = "what is the airspeed velocity of an unladen swallow"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """This module's own app folder: its question log and votes are these tests' alone."""
    return tmp_path_factory.mktemp("browser-feedback")


@pytest.fixture(scope="module")
def app_url(root):
    with running_app(root) as app:
        yield app.url


def eval_feedback(index_dir) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "index", "eval", "--feedback", "--json", "--index", str(index_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_thumbs_up_in_the_browser_counts_in_eval_feedback(browser, app_url, root):  # noqa: F811 (the fixture imported above)
    page = open_page(browser, app_url)
    ask(page, HEAL)
    box = answer_box(page)
    box.get_by_text("vertebral fractures take weeks", exact=False).wait_for(timeout=90_000)
    box.get_by_role("radio", name="Thumbs up").click()
    page.get_by_text("your vote is kept", exact=False).wait_for(timeout=30_000)  # the toast: the vote is stored
    [vote] = [v for v in read_votes(root / "index" / FEEDBACK) if v.question == HEAL]
    assert vote.vote is Thumb.UP and vote.passage.source == "back-and-hip-health.txt"
    scores = eval_feedback(root / "index")
    assert (scores["up"], scores["judged"]) == (1, 1)
    assert scores["recall_at_1"] == 1.0  # the passage voted up ranks first on the current index
    page.context.close()


def test_a_refused_question_shows_on_the_gaps_page(browser, app_url, root):  # noqa: F811 (the fixture imported above)
    page = open_page(browser, app_url)
    ask(page, REFUSED)
    page.get_by_text("No passage in the collection answers this.").wait_for(timeout=90_000)
    assert REFUSED in [e.question for e in read_log(root / "index", days=1)]
    page.goto(f"{app_url}/gaps")
    page.get_by_role("heading", name="Knowledge gaps").wait_for(timeout=60_000)
    page.get_by_test_id("stDataFrame").wait_for(timeout=30_000)
    page.get_by_role("button", name="Export 1 question as a question set").wait_for(timeout=30_000)
    page.context.close()


def test_bad_link_parameters_are_said(browser, app_url):  # noqa: F811 (the fixture imported above)
    page = open_page(browser, f"{app_url}/?k=banana&doc=nope.txt")
    page.get_by_text("Ignored in the link: k=banana, doc=nope.txt.").wait_for(timeout=60_000)
    page.context.close()


def test_on_a_phone_documents_and_gaps_are_one_tap_away(browser, app_url):  # noqa: F811 (the fixture imported above)
    page = open_page(browser, f"{app_url}/?q={urllib.parse.quote(HEAL)}", **PHONE)
    links = page.locator(".st-key-phone-nav")
    documents = links.get_by_role("link", name="Documents")
    documents.wait_for(timeout=60_000)
    box = documents.bounding_box()
    assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= 390 and 0 <= box["y"] < 844
    documents.tap()
    page.get_by_role("heading", name="Documents", exact=True).wait_for(timeout=60_000)
    links.get_by_role("link", name="Ask").tap()
    page.get_by_label("Your question").wait_for(timeout=60_000)
    page.context.close()
    desktop = open_page(browser, app_url)
    desktop.get_by_label("Your question").wait_for(timeout=60_000)
    desktop.locator(".st-key-phone-nav").wait_for(state="hidden", timeout=30_000)  # the top navigation instead
    desktop.context.close()
