"""The Documents page: see ui/documents.py."""

from ui.documents import documents_page
from ui.resources import run_page

run_page(documents_page)
