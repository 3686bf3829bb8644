"""The Ask page's other mode and its filters: every mention of a phrase, and the sidebar's document filters.

"Every mention" lists each place a phrase occurs, by document with counts,
each with a few words around it and a link that opens the document there
(`index.search.mentions`). The filters (type, folder, file date, tag, title;
`index.search.filters`) limit answers and mentions alike; their values live
in the URL as `type=…&folder=…&after=…&before=…&tag=…&title=…`, so a link
shares them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import streamlit as st

from index.records import DocumentInfo
from index.search.filters import FilterError, FilterKey, Where, document_type
from index.search.searcher import Searcher
from ui.markdown import escape_markdown, highlight_markdown
from ui.progress import plural

ANSWER, MENTIONS = "answer", "mentions"
MODE_LABELS = {ANSWER: "Answer", MENTIONS: "Every mention"}
FILTER_KEYS = tuple(key.value for key in FilterKey)
WIDGET = {key: f"filter_{key}" for key in FILTER_KEYS}
SHOWN_PER_DOCUMENT = 50  # the count is always complete; beyond this a document's mentions are summed up
CONTEXT = 60  # characters shown on each side of a mention


def where_from_url(values: dict[str, list[str]]) -> tuple[str, ...]:
    """The URL's filter values as `key=value` strings (in the order of the keys)."""
    return tuple(f"{key}={value}" for key in FILTER_KEYS for value in values.get(key, ()) if value)


def set_filter_widgets(where: Sequence[str]) -> None:
    """Put the filter values of a URL into the sidebar's widgets."""
    values: dict[str, list[str]] = {key: [] for key in FILTER_KEYS}
    for condition in where:
        key, _, value = condition.partition("=")
        if key in values:
            values[key].append(value)
    for key in ("type", "folder", "tag"):
        st.session_state[WIDGET[key]] = values[key]
    for key in ("after", "before"):
        st.session_state[WIDGET[key]] = _day(values[key][0]) if values[key] else None
    st.session_state[WIDGET["title"]] = values["title"][0] if values["title"] else ""


def filter_sidebar(documents: Sequence[DocumentInfo]) -> tuple[tuple[str, ...], Where | None]:
    """The sidebar's filters: their `key=value` strings (for the URL) and the filter (None: none set, or bad)."""
    with st.sidebar:
        st.subheader("Only documents that…", anchor=False)
        types = sorted({document_type(d.source) for d in documents})
        folders = sorted({folder for d in documents for folder in _folders(d.source)})
        tags = sorted({tag for d in documents for tag in d.tags}, key=str.casefold)
        _keep_known(WIDGET["type"], types)
        _keep_known(WIDGET["folder"], folders)
        _keep_known(WIDGET["tag"], tags)
        st.multiselect("are of type", types, key=WIDGET["type"], placeholder="Any type")
        st.multiselect("are in folder", folders, key=WIDGET["folder"], placeholder="Any folder")
        st.date_input("changed on or after", key=WIDGET["after"], value=None, format="YYYY-MM-DD")
        st.date_input("changed before", key=WIDGET["before"], value=None, format="YYYY-MM-DD")
        st.multiselect("have tag", tags, key=WIDGET["tag"], placeholder="Any tag")
        st.text_input("have in their title", key=WIDGET["title"], placeholder="Words of the title")
    state = st.session_state
    fields = {
        "type": state[WIDGET["type"]],
        "folder": state[WIDGET["folder"]],
        "after": state[WIDGET["after"]].isoformat() if state[WIDGET["after"]] else None,
        "before": state[WIDGET["before"]].isoformat() if state[WIDGET["before"]] else None,
        "tag": state[WIDGET["tag"]],
        "title": state[WIDGET["title"]].strip() or None,
    }
    try:
        where = Where.from_fields(fields)
    except FilterError as exc:  # the widgets only offer valid values; kept for safety
        st.sidebar.error(escape_markdown(str(exc)))
        return (), None
    return tuple(where.to_strings()), where or None


def show_mentions(
    searcher: Searcher, phrase: str, where: Where | None, sources: frozenset[str] | None, document_page: str
) -> None:
    """Every mention of `phrase` (in `sources`, when given), by document, each with its context and a link."""
    try:
        found = searcher.mentions(phrase, where, sources)
    except ValueError as exc:  # an empty phrase, or a filter the index cannot apply
        st.warning(escape_markdown(str(exc)))
        return
    if not found.total:
        st.info(escape_markdown(f"No document mentions {found.phrase}."))
        return
    st.markdown(
        f"**{escape_markdown(plural(found.total, 'mention'))}** in "
        f"{escape_markdown(plural(len(found.documents), 'document'))}"
    )
    rows = {(d.source, d.doc_id): row for row, d in enumerate(searcher.stored.documents)}
    for doc in found.documents:
        text = searcher.stored.texts.text(rows[doc.source, doc.doc_id])
        label = doc.source if doc.doc_id == doc.source else f"{doc.source} [{doc.doc_id}]"
        with st.expander(f"{escape_markdown(label)} ({doc.count})", expanded=len(found.documents) <= 3):
            for mention in doc.mentions[:SHOWN_PER_DOCUMENT]:
                show_mention(doc.source, doc.doc_id, text, mention, document_page)
            if doc.count > SHOWN_PER_DOCUMENT:
                st.caption(f"and {doc.count - SHOWN_PER_DOCUMENT} more in this document")


def show_mention(source: str, doc_id: str, text: str, mention, document_page: str) -> None:
    begin, end = max(0, mention.start - CONTEXT), min(len(text), mention.end + CONTEXT)
    where = f"page {mention.page}" if mention.page is not None else f"line {mention.line}"
    snippet = " ".join(text[begin : mention.start].split()[-8:]), " ".join(text[mention.end : end].split()[:8])
    shown = f"…{snippet[0]} {mention.text} {snippet[1]}…"
    start = len(snippet[0]) + 2
    st.markdown(f"{escape_markdown(where)}: " + highlight_markdown(shown, start, start + len(mention.text)))
    params = {"source": source, "start": str(mention.start), "end": str(mention.end)}
    params |= {"from": str(mention.start), "to": str(mention.end)}
    if doc_id != source:
        params["id"] = doc_id
    st.page_link(document_page, label="Open the document here", icon=":material/open_in_new:", query_params=params)


def _folders(source: str) -> list[str]:
    parts = source.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _keep_known(key: str, options: Sequence[str]) -> None:
    """Drop values the widget does not offer (a link from another collection) before it is drawn."""
    if key in st.session_state:
        st.session_state[key] = [v for v in st.session_state[key] if v in options]


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None
