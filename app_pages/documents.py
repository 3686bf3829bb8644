"""The Documents page: see ui/documents.py."""

from ui.documents import documents_page
from ui.resources import context

documents_page(context())
