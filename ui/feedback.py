"""👍 and 👎 under the answer, and "the answer is in …": votes stored as `index.feedback` judgments.

The thumbs judge the passage the answer box quotes first. "The answer is
in …" lets the person pick a document and one of its passages, which is
stored as the passage that answers. Votes are kept beside the index
folder; ranking does not learn from them, they are measured
(`python -m index eval --feedback`, and the Documents page's quality panel).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from pathlib import Path

import streamlit as st

from index.evaluate import FeedbackReport, evaluate_feedback
from index.feedback import FEEDBACK, QuotedPassage, Thumb, Vote, read_votes, record_vote
from index.records import Answer, Passage, Verdict, text_id
from index.search.searcher import Searcher
from ui.answer import quoted_hits
from ui.errors import log_error, redact
from ui.markdown import escape_markdown
from ui.progress import plural
from ui.resources import AppContext

THANKS = "Thanks: your vote is kept with this index, to measure its answers."
# Passages offered for one document in "the answer is in …" (a long document: the first ones).
MAX_OFFERED = 300


def quoted(passage: Passage) -> QuotedPassage:
    loc = passage.location
    return QuotedPassage(passage.id, loc.source, loc.start, loc.end, None if loc.doc_id == loc.source else loc.doc_id)


def vote_box(app: AppContext, searcher: Searcher, answer: Answer) -> Callable[[], None]:
    """What the Ask page shows in its answer box (or under "no passage answers"): the thumbs and "the answer is in …"."""

    def show() -> None:
        version = searcher.stored.path.name
        key = f"kb_vote_{text_id(answer.query + version)}"
        hits = quoted_hits(answer) if answer.verdict is not Verdict.NOT_ANSWERED else []
        top = quoted(hits[0].passage) if hits else None
        with st.container(horizontal=True, vertical_alignment="center"):
            st.feedback("thumbs", key=key, on_change=_thumbs, args=(app, answer.query, top, version, key))
            with st.popover("The answer is in …", icon=":material/find_in_page:"):
                _answer_in(app, searcher, answer.query, top, version, key)

    return show


def _thumbs(app: AppContext, question: str, top: QuotedPassage | None, version: str, key: str) -> None:
    choice = st.session_state.get(key)
    if choice is None:
        return
    _store(app, Vote(question, Thumb.UP if choice == 1 else Thumb.DOWN, top, None, version))


def _answer_in(app: AppContext, searcher: Searcher, question: str, top, version: str, key: str) -> None:
    documents = sorted({d.source for d in searcher.stored.documents})
    source = st.selectbox("Document", documents, index=None, key=f"{key}_doc", placeholder="Choose a document")
    if source is None:
        return
    offered = list(islice((p for p in searcher.stored.passages if p.location.source == source), MAX_OFFERED))
    passage = st.selectbox(
        "Passage",
        offered,
        index=None,
        key=f"{key}_passage",
        format_func=lambda p: f"line {p.location.line}: {p.text[:90]}{'…' if len(p.text) > 90 else ''}",
        placeholder="Choose the passage that answers",
    )
    if st.button("Record", key=f"{key}_record", disabled=passage is None) and passage is not None:
        thumb = Thumb.UP if st.session_state.get(key) == 1 else Thumb.DOWN
        _store(app, Vote(question, thumb, top, quoted(passage), version))


def _store(app: AppContext, vote: Vote) -> None:
    try:
        record_vote(app.config.index, vote)
    except OSError as exc:
        log_error("recording a vote", exc)
        st.toast("Your vote could not be kept; try again later.")
        return
    st.toast(THANKS)


@st.cache_resource(max_entries=4, show_spinner="Asking the voted questions again…")
def get_feedback_quality(_searcher: Searcher, version: str, path: str, modified_ns: int) -> FeedbackReport:
    """The votes' scores for one index version (recomputed when either changes)."""
    return evaluate_feedback(_searcher, read_votes(Path(path)))


def feedback_panel(app: AppContext, searcher: Searcher | None) -> None:
    """The Documents page's quality panel, from people's votes: where the passages they marked rank now."""
    path = app.config.index / FEEDBACK
    if searcher is None or not path.is_file():
        return
    with st.expander("How well it answers the questions people voted on", expanded=True):
        try:
            report = get_feedback_quality(searcher, searcher.stored.path.name, str(path), path.stat().st_mtime_ns)
        except ValueError as exc:
            st.error(escape_markdown(redact(str(exc))))
            return
        if not report.votes:
            st.caption("No votes yet: 👍 and 👎 under an answer are counted here.")
            return
        lines = [
            f"{plural(report.votes, 'vote')} ({report.up} 👍, {report.down} 👎) on {plural(report.questions, 'question')}."
        ]
        if report.judged:
            lines.append(
                f"The passage people marked as answering came first for **{report.recall_at_1:.0%}** of "
                f"{plural(report.judged, 'question')}, and among the first three for **{report.recall_at_3:.0%}**."
            )
        if report.misses:
            lines.append(f"{plural(report.misses, 'question')} voted 👎 with no passage named (a miss, not scored).")
        st.markdown("  \n".join(lines))
        st.caption("Check it on the command line: python -m index eval --feedback")
