"""The Ask page: a question box, the answer on top with numbered citations, the cited passages below.

The page's state lives in its URL: `q` (the question), `k` (how many
passages), `doc` (repeated, the documents to search), `mode=mentions` (every
mention of a phrase instead of an answer) and the filters (`type`, `folder`,
`after`, `before`, `tag`, `title`; `ui.mentions`), so a link shares exactly
what is on screen. Each new question pushes a browser history
entry, and Back or Forward brings the earlier question (and its options)
back into the box: the URL is read whenever it differs from what the page
last wrote there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import streamlit as st

from index.counting import count_documents
from index.errors import StoreError
from index.records import Answer, Hit, Verdict
from index.search.filters import FilterError
from index.search.query import MAX_QUERY_CHARS, clean_query, query_is_cut
from ui.answer import quoted_hits, sureness
from ui.errors import index_problem, log_error
from ui.feedback import vote_box
from ui.followup import read_with_previous
from ui.freshness import index_updated
from ui.gaps import log_asked
from ui.links import ignored_note, ignored_params
from ui.markdown import anchor, escape_markdown, hit_heading, hit_highlight, quote_markdown
from ui.mentions import (
    ANSWER,
    FILTER_KEYS,
    MENTIONS,
    MODE_LABELS,
    filter_sidebar,
    set_filter_widgets,
    show_mentions,
    where_from_url,
)
from ui.resources import AppContext
from ui.status import build_status, request_build

EXAMPLES = (
    "How long does a broken vertebra take to heal?",
    "What muscles are the hip flexors?",
    "When should back pain be investigated by a doctor?",
    "How often should I ice a painful hip?",
)
ASK_IN_WORDS = "Ask a question in words, for example one of the suggestions below the box."
DEFAULT_K, MAX_K = 5, 20
CUT_NOTE = (
    f"Your question was longer than {MAX_QUERY_CHARS:,} characters, so it was cut at the last whole word "
    "before that. The answer is based on the question as shown in the box."
)
DOCUMENT_PAGE = "app_pages/document.py"
URL = "kb_url"  # what the page last wrote to (or read from) the URL
CUT = "kb_question_cut"
IGNORED = "kb_link_ignored"  # what the link last read asked for that the page cannot do


@dataclass(frozen=True)
class UrlState:
    """The page's state as the URL holds it."""

    query: str = ""
    k: int = DEFAULT_K
    documents: tuple[str, ...] = ()
    mode: str = ANSWER
    where: tuple[str, ...] = ()

    @classmethod
    def read(cls) -> UrlState:
        params = st.query_params
        try:
            k = min(max(int(params.get("k", DEFAULT_K)), 1), MAX_K)
        except ValueError:
            k = DEFAULT_K
        mode = MENTIONS if params.get("mode") == MENTIONS else ANSWER
        where = where_from_url({key: params.get_all(key) for key in FILTER_KEYS})
        return cls(params.get("q", ""), k, tuple(params.get_all("doc")), mode, where)

    def write(self) -> None:
        """Set the URL to this state (one history entry)."""
        params: dict[str, str | list[str]] = {}
        if self.query:
            params["q"] = self.query
        if self.k != DEFAULT_K:
            params["k"] = str(self.k)
        if self.documents:
            params["doc"] = list(self.documents)
        if self.mode != ANSWER:
            params["mode"] = self.mode
        for condition in self.where:
            key, _, value = condition.partition("=")
            params.setdefault(key, []).append(value)  # type: ignore[union-attr]
        st.query_params.from_dict(params)


def ask_page(app: AppContext) -> None:
    st.title("Ask the knowledge base")
    try:
        searcher = app.searcher()
    except StoreError as exc:
        show_index_problem(app, exc)
        return
    build_status(app.job)
    documents = sorted({d.source for d in searcher.stored.documents})
    follow_url(documents)
    if note := ignored_note(st.session_state.get(IGNORED, ())):
        st.info(escape_markdown(note), icon=":material/link_off:")
    st.caption(
        f"Answers are quoted from {count_documents(searcher.stored.documents)}, with a link to each source. "
        + escape_markdown(index_updated(searcher.stored))
    )
    query, mode = question_box()
    k, sources = search_options(documents)
    where_strings, where = filter_sidebar(searcher.stored.documents)
    remember_in_url(query, k, sources, mode, where_strings)
    if query and mode == MENTIONS:
        show_mentions(searcher, query, where, frozenset(sources) if sources else None, DOCUMENT_PAGE)
    elif query:
        searched = read_with_previous(query)  # a follow-up without a subject borrows the previous one's
        try:
            answer = searcher.search(searched, k=k, sources=frozenset(sources) if sources else None, where=where)
        except FilterError as exc:  # by title or tag, on an index built before they were kept
            st.warning(escape_markdown(str(exc)))
            return
        log_asked(app, answer, searcher.stored.path.name, (k, tuple(sources)))
        if answer.query:
            show_answer(answer, vote_box(app, searcher, answer))
        else:  # only control characters: nothing left to search
            st.info(ASK_IN_WORDS)
    else:
        examples()


def follow_url(documents: Sequence[str]) -> None:
    """Take the question and options from the URL when it changed from outside (a link, Back, Forward)."""
    url = UrlState.read()
    widgets_kept = all(key in st.session_state for key in ("query", "k", "sources", "mode"))  # gone after another page
    if st.session_state.get(URL) == url and widgets_kept:
        return
    st.session_state.query = clean_query(url.query) if query_is_cut(url.query) else url.query
    st.session_state[CUT] = query_is_cut(url.query)
    st.session_state.k = url.k
    st.session_state.sources = [d for d in url.documents if d in documents]
    st.session_state.mode = url.mode
    set_filter_widgets(url.where)
    st.session_state[URL] = url
    st.session_state[IGNORED] = ignored_params(st.query_params.get_all("k"), url.documents, documents, MAX_K)


def remember_in_url(query: str, k: int, sources: Sequence[str], mode: str = ANSWER, where: Sequence[str] = ()) -> None:
    """Put what is on screen in the URL; a new question becomes a new browser history entry."""
    state = UrlState(query, k, tuple(sources), mode, tuple(where))
    before = st.session_state.get(URL)
    if before is not None and before.query != query:
        st.session_state.pop(IGNORED, None)  # a new question: the link's leftovers are old news
    if before != state:
        state.write()
        st.session_state[URL] = state


def question_box() -> tuple[str, str]:
    """The question (or phrase) and the mode beside it: an answer, or every mention."""
    box, choice = st.columns([4, 1], vertical_alignment="bottom")
    with choice:
        st.radio("Search for", list(MODE_LABELS), key="mode", format_func=MODE_LABELS.get, label_visibility="collapsed")
    mentions = st.session_state.mode == MENTIONS
    with box:
        st.text_input(
            'Words or "a phrase" to find everywhere' if mentions else "Your question",
            key="query",
            on_change=_question_changed,
            placeholder='e.g. "hip flexors"' if mentions else "e.g. how long does a broken vertebra take to heal?",
        )
    if st.session_state.get(CUT):
        st.info(CUT_NOTE, icon=":material/content_cut:")
    return st.session_state.query.strip(), st.session_state.mode


def _question_changed() -> None:
    """Cut a pasted question that is too long, visibly, before the page uses it."""
    text = st.session_state.query
    st.session_state[CUT] = query_is_cut(text)
    if st.session_state[CUT]:
        st.session_state.query = clean_query(text)


def examples() -> None:
    st.caption("Or try one of these:")
    with st.container(horizontal=True, key="examples"):
        for example in EXAMPLES:
            st.button(example, on_click=_ask, args=(example,))


def _ask(text: str) -> None:
    st.session_state.query = text
    st.session_state[CUT] = False


def search_options(documents: Sequence[str]) -> tuple[int, list[str]]:
    with st.sidebar:
        st.header("Search options")
        sources = st.multiselect("Only these documents", documents, key="sources", placeholder="All documents")
        k = st.slider("Sources to show", min_value=1, max_value=MAX_K, key="k")
    return k, sources


def did_you_mean(answer: Answer) -> None:
    """The corrected question: said when it was answered instead, offered (one click asks it) otherwise."""
    if answer.corrected:
        st.info(
            f"Nothing confident for the question as typed; these answer “{escape_markdown(answer.suggestion)}”.",
            icon=":material/spellcheck:",
        )
    elif answer.suggestion:
        st.button(
            f"Did you mean: {escape_markdown(answer.suggestion)}",
            key="did_you_mean",
            on_click=_ask,
            args=(answer.suggestion,),
            icon=":material/spellcheck:",
            type="tertiary",
        )


def show_answer(answer: Answer, votes: Callable[[], None] | None = None) -> None:
    """The answer box and the cards; `votes` shows the 👍/👎 in the box (`ui.feedback.vote_box`)."""
    did_you_mean(answer)
    if answer.verdict is Verdict.NOT_ANSWERED or not answer.hits:
        st.warning(Verdict.NOT_ANSWERED.label)
        if votes is not None:
            votes()
        if answer.hits:
            with st.expander("Closest sources (weak matches, probably not answers)", expanded=False):
                for hit in answer.hits:
                    hit_card(hit)
        return
    with st.container(border=True, key="answer"):
        if answer.verdict is Verdict.ANSWERED:
            st.markdown(f":green[:material/check_circle:] **{sureness(answer)}**")
        else:
            st.markdown(f":orange[:material/help:] **{sureness(answer)}**")
        for hit in quoted_hits(answer):
            st.markdown(quote_markdown(hit))
        if votes is not None:
            votes()
    st.subheader("Sources", anchor=False)
    for hit in answer.hits:
        hit_card(hit)
    ranking_table(answer)


def hit_card(hit: Hit) -> None:
    location = hit.passage.location
    st.html(f'<span id="{anchor(hit.rank)}" style="scroll-margin-top: 5rem"></span>')  # where [n] jumps to
    with st.container(border=True, key=anchor(hit.rank)):
        st.markdown(hit_heading(hit))
        st.markdown(hit_highlight(hit))
        params = {"source": location.source, "start": str(location.start), "end": str(location.end)}
        params |= {"from": str(hit.answer.start), "to": str(hit.answer.end)}
        if location.doc_id != location.source:
            params["id"] = location.doc_id
        st.page_link(DOCUMENT_PAGE, label="Open the document here", icon=":material/open_in_new:", query_params=params)


def ranking_table(answer: Answer) -> None:
    with st.expander("How these were ranked"):
        st.caption(
            "Each source is ranked by meaning (how close the whole text and its best sentence are to the "
            "question, from 0 to 1) and by shared keywords (BM25); the two are combined, leaning on meaning "
            "more when the closest match is strong. Confidence is the chance that the source answers the question."
        )
        st.dataframe([ranking_row(hit) for hit in answer.hits], hide_index=True)


def ranking_row(hit: Hit) -> dict:
    """One row of "How these were ranked": each retriever's rank and the parts of the score."""
    row = {"source": f"[{hit.rank}]", "by meaning": hit.dense_rank, "by keywords": hit.keyword_rank}
    if hit.parts is not None:
        row |= {
            "text match": round(hit.parts.passage_cosine, 3),
            "best sentence match": round(hit.parts.sentence_cosine, 3),
            "keyword score": round(hit.parts.keyword, 2),
            "weight on meaning": round(hit.parts.dense_weight, 2),
            "combined": round(hit.parts.fused, 3),
        }
    return row | {"confidence": f"{hit.confidence:.0%}", "document": hit.passage.location.cite()}


def show_index_problem(app: AppContext, exc: StoreError) -> None:
    log_error("the index cannot be used", exc)
    problem, fix = index_problem(exc, app.can_edit)
    st.error(escape_markdown(f"{problem} {fix}"))
    if app.can_edit:
        build_status(app.job, show_others=True)
        if st.button("Build the index now", type="primary", disabled=app.job.state.running):
            request_build(app.job, rebuild=True)
            st.rerun()
