"""One document, opened from a citation: see ui/document.py."""

from ui.document import document_page
from ui.resources import run_page

run_page(document_page)
