"""The Document page: one document's whole extracted text, a cited passage highlighted and scrolled into view.

Opened from a card's link with `?source=…&start=…&end=…` (the passage's
character span in the document's extracted text), `from`/`to` (the answer
sentence's span) and, for a record of a collection file, `id`. The text is
what the build read (`ingest.documents.read_document`), so the spans index
into it; when the file changed since the index was built the spans may not
fit any more, and the page says so instead of highlighting the wrong words.
Long documents are shown a page at a time (PDFs by their own pages), the
page holding the passage first. The original file can be downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from index.records import text_id
from ingest.documents import DocumentNotFound, DocumentUnreadable, document_path, read_document
from ingest.loaders import Document
from ui.errors import log_error, redact
from ui.markdown import escape_markdown, passage_markdown
from ui.resources import AppContext

PAGE_CHARS = 12_000
PASSAGE_KEY = "kb-passage"
# Our own script, with nothing from the document in it: bring the highlighted passage into view.
SCROLL_TO_PASSAGE = """
<script>
(function scroll(tries) {
  const passage = document.querySelector(".st-key-PASSAGE_KEY");
  if (passage) { passage.scrollIntoView({block: "center"}); }
  else if (tries > 0) { setTimeout(() => scroll(tries - 1), 100); }
})(30);
</script>
""".replace("PASSAGE_KEY", PASSAGE_KEY)


@dataclass(frozen=True)
class Span:
    """A character span of the document, from the link."""

    start: int
    end: int

    def within(self, low: int, high: int) -> bool:
        return low <= self.start < self.end <= high


def text_pages(document: Document, size: int = PAGE_CHARS) -> list[tuple[int, int]]:
    """The document cut into pages, as (start, end) offsets: a PDF's own pages, else about `size` characters at paragraph breaks."""
    text = document.text
    if document.pages:
        bounds = [*document.pages, len(text)]
        return [(bounds[i], bounds[i + 1]) for i in range(len(document.pages))]
    pages, start = [], 0
    while len(text) - start > size:
        cut = text.rfind("\n\n", start + size // 2, start + size)
        if cut == -1:
            cut = text.rfind("\n", start + size // 2, start + size)
        if cut == -1:
            cut = text.rfind(" ", start + size // 2, start + size)
        end = cut + 1 if cut != -1 else start + size
        pages.append((start, end))
        start = end
    pages.append((start, len(text)))
    return pages


def page_of(pages: list[tuple[int, int]], offset: int) -> int:
    """The index of the page holding `offset` (the last page for offsets past the end)."""
    return next((i for i, (start, end) in enumerate(pages) if start <= offset < end), len(pages) - 1)


def _span(params, first: str, second: str) -> Span | None:
    try:
        return Span(int(params[first]), int(params[second]))
    except (KeyError, ValueError):
        return None


def document_page(app: AppContext) -> None:
    params = st.query_params
    source = params.get("source", "")
    st.page_link("app_pages/ask.py", label="Back to the question", icon=":material/arrow_back:")
    try:
        path = document_path(app.corpus, source)
        document = read_document(app.corpus, source, params.get("id") or None)
    except DocumentNotFound:
        st.error(escape_markdown(f"{source or 'This document'} is not in the knowledge base (any more)."))
        return
    except DocumentUnreadable as exc:
        st.error(escape_markdown(f"{source} cannot be read: {redact(str(exc))}."))
        return
    except OSError as exc:
        log_error(f"reading {source}", exc)
        st.error(escape_markdown(f"{source} cannot be read right now; try again later."))
        return
    st.title(escape_markdown(source.rsplit("/", 1)[-1]), anchor=False)
    passage, sentence = _span(params, "start", "end"), _span(params, "from", "to")
    if passage is not None and not passage.within(0, len(document.text)):
        passage = None
    meta = [source]
    if document.doc_id != source:
        meta.append(f"record {document.doc_id}")
    if passage is not None:
        meta.append(f"characters {passage.start:,}–{passage.end:,}")
    st.caption(escape_markdown(" · ".join(meta)))
    st.download_button(
        "Download the original file",
        data=lambda: path.read_bytes(),
        file_name=path.name,
        icon=":material/download:",
        on_click="ignore",
    )
    if passage is not None and not _indexed_as_is(app, document):
        st.warning(
            "This document changed after the index was built, so the cited place may have moved; "
            "it is not highlighted. The next rebuild brings the citations up to date."
        )
        passage = None
    show_text(document, passage, sentence)


def _indexed_as_is(app: AppContext, document: Document) -> bool:
    """Whether the live index holds this very text (so its spans fit)."""
    searcher = app.searcher_or_none()
    if searcher is None:
        return False
    wanted = (document.source, document.doc_id)
    return any((d.source, d.doc_id) == wanted and d.sha256 == text_id(document.text) for d in searcher.stored.documents)


def show_text(document: Document, passage: Span | None, sentence: Span | None) -> None:
    pages = text_pages(document)
    number = page_of(pages, passage.start) if passage is not None else 0
    if len(pages) > 1:
        label = "PDF page" if document.pages else "Page"
        number = (
            st.number_input(
                f"{label} (of {len(pages)})",
                min_value=1,
                max_value=len(pages),
                value=number + 1,
                key=f"page-{document.source}-{document.doc_id}-{passage}",
            )
            - 1
        )
    start, end = pages[number]
    text = document.text
    with st.container(border=True):
        if passage is None or not start <= passage.start < end:
            st.markdown(escape_markdown(text[start:end]))
            return
        high = min(passage.end, end)
        if text[start : passage.start].strip():
            st.markdown(escape_markdown(text[start : passage.start]))
        within = (sentence.start - passage.start, sentence.end - passage.start) if sentence else (0, 0)
        with st.container(key=PASSAGE_KEY):
            st.markdown(passage_markdown(text[passage.start : high], within))
        if text[high:end].strip():
            st.markdown(escape_markdown(text[high:end]))
    st.html(SCROLL_TO_PASSAGE, unsafe_allow_javascript=True)
