"""The Gaps page: questions the documents did not answer; see ui/gaps.py."""

from ui.gaps import gaps_page
from ui.resources import run_page

run_page(gaps_page)
