"""The Document page: one document's whole extracted text, a cited passage highlighted and scrolled into view.

Opened from a card's link with `?source=…&start=…&end=…` (the passage's
character span in the document's extracted text), `from`/`to` (the answer
sentence's span) and, for a record of a collection file, `id`. The text is
the one the live index stores (`ingest.documents.indexed_text`, as the API's
`/documents/{id}` serves it), so the spans always fit it and no view parses
the file again; when the file changed since, the page says so and the next
rebuild brings the text up to date. A document the build skipped shows its
reason and nothing else. Long documents are shown a page at a time, the page
holding the passage first. The original file can be downloaded, read when the
button is clicked and only while it is still the file the index recorded
(`ingest.documents.read_original`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import streamlit as st

from index.store.version import SourceFile
from ingest.documents import DocumentNotFound, DocumentUnreadable, IndexedText, indexed_text, read_original
from ingest.loaders import corpus_root
from ui.errors import redact
from ui.markdown import escape_markdown, laid_out_markdown, passage_markdown
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


def text_pages(text: str, size: int = PAGE_CHARS) -> list[tuple[int, int]]:
    """`text` cut into pages of about `size` characters at paragraph breaks, as (start, end) offsets."""
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
    searcher = app.searcher_or_none()
    if searcher is None:
        st.error("There is no index to show documents from yet.")
        return
    try:
        document = indexed_text(searcher.stored, source, params.get("id") or None)
    except DocumentNotFound:
        st.error(escape_markdown(f"{source or 'This document'} is not in the knowledge base (any more)."))
        return
    except DocumentUnreadable as exc:
        st.error(escape_markdown(f"{source} was skipped when the index was built: {redact(str(exc))}."))
        return
    text = document.text
    st.title(escape_markdown(source.rsplit("/", 1)[-1]), anchor=False)
    passage, sentence = _span(params, "start", "end"), _span(params, "from", "to")
    if passage is not None and not passage.within(0, len(text)):
        passage = None
    meta = [source]
    if document.info.doc_id != source:
        meta.append(f"record {document.info.doc_id}")
    if passage is not None:
        meta.append(f"characters {passage.start:,}–{passage.end:,}")
    st.caption(escape_markdown(" · ".join(meta)))
    if document.recorded is not None:
        st.download_button(
            "Download the original file",
            data=partial(read_original, app.corpus, source, document.recorded),  # read on click, by the one rule
            file_name=source.rsplit("/", 1)[-1],
            icon=":material/download:",
            on_click="ignore",
        )
    if document.recorded is not None and not _unchanged(app.corpus, source, document.recorded):
        st.info(
            "The file changed after the index was built (or was removed); this is the text the index holds, "
            "which its citations point into. The next rebuild brings it up to date."
        )
    show_text(document, passage, sentence)


def _unchanged(corpus: Path, source: str, recorded: SourceFile) -> bool:
    """Whether the file still has the size and time the index recorded (a stat, nothing read)."""
    try:
        info = os.stat(corpus_root(corpus) / source)
    except (OSError, ValueError):
        return False
    return (info.st_size, info.st_mtime_ns) == (recorded.size, recorded.mtime_ns)


def show_text(document: IndexedText, passage: Span | None, sentence: Span | None) -> None:
    text = document.text
    pages = text_pages(text)
    number = page_of(pages, passage.start) if passage is not None else 0
    if len(pages) > 1:
        number = (
            st.number_input(
                f"Page (of {len(pages)})",
                min_value=1,
                max_value=len(pages),
                value=number + 1,
                key=f"page-{document.info.source}-{document.info.doc_id}-{passage}",
            )
            - 1
        )
    start, end = pages[number]
    headings = document.info.headings
    with st.container(border=True):
        if passage is None or not start <= passage.start < end:
            st.markdown(laid_out_markdown(text[start:end], start, headings))
            return
        high = min(passage.end, end)
        if text[start : passage.start].strip():
            st.markdown(laid_out_markdown(text[start : passage.start], start, headings))
        within = (sentence.start - passage.start, sentence.end - passage.start) if sentence else (0, 0)
        with st.container(key=PASSAGE_KEY):
            st.markdown(passage_markdown(text[passage.start : high], within))
        if text[high:end].strip():
            st.markdown(laid_out_markdown(text[high:end], high, headings))
    st.html(SCROLL_TO_PASSAGE, unsafe_allow_javascript=True)
