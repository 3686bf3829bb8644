"""The Ask page (the app's home): see ui/ask.py."""

from ui.ask import ask_page
from ui.resources import run_page

run_page(ask_page)
