"""The Gaps page, and logging the Ask page's questions for it (`index.gaps`).

The page lists the questions no document answered (or only "unsure"),
near-identical ones grouped, newest first, and exports them as a question
set a team can check with `python -m index eval --questions` once the
missing document is written. It is behind the admin password when one is
set: the questions people ask are the team's business, not every visitor's.
"""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from index.gaps import DEFAULT_DAYS, gaps, logging_on, read_log, retention_days, to_question_set
from index.records import Answer
from ui.documents import unlock
from ui.markdown import escape_markdown
from ui.progress import plural
from ui.resources import EDITOR, AppContext

LOGGED = "kb_logged"  # the last question this session logged: a rerun of the page does not log it again
VERDICT_WORDS = {"not_answered": "not in your documents", "unsure": "unsure"}


def log_asked(app: AppContext, answer: Answer, version: str, options: tuple = ()) -> None:
    """Log a question asked on the Ask page, once per asking (not on every rerun of the page)."""
    from index.gaps import log_question

    key = (answer.query, version, options)
    if st.session_state.get(LOGGED) == key:
        return
    st.session_state[LOGGED] = key
    log_question(app.config.index, answer, version)


def gaps_page(app: AppContext) -> None:
    st.title("Knowledge gaps", anchor=False)
    if app.access.password is not None and not st.session_state.get(EDITOR):
        st.caption("The questions people asked that no document answered.")
        unlock(app, "Seeing the questions people asked needs the admin password.")
        return
    try:
        on, keep = logging_on(), retention_days()
    except ValueError as exc:
        st.error(escape_markdown(f"The question log is not set up right: {exc}."))
        return
    st.caption(
        "Questions asked here, over the API or the MCP server that no document answered, or only with "
        f"\u201cunsure\u201d; near-identical ones are grouped, newest first. Kept {plural(keep, 'day')} "
        f"(KB_LOG_DAYS; default {DEFAULT_DAYS}); only the question, its time, verdict, confidence, top source "
        "and index version are stored."
    )
    if not on:
        st.info("Questions are not being logged (KB_LOG_QUESTIONS=0); earlier ones are still listed.")
    found = gaps(read_log(app.config.index, days=keep))
    if not found:
        st.success("No unanswered questions logged yet.")
        return
    st.dataframe(
        [
            {
                "question": gap.question,
                "asked": gap.count,
                "last asked": _local(gap.last_asked),
                "answer": VERDICT_WORDS.get(gap.verdict, gap.verdict),
                "closest document": gap.best_source or "",
            }
            for gap in found
        ],
        hide_index=True,
        width="stretch",
        column_config={"question": st.column_config.TextColumn(width="large")},
    )
    st.download_button(
        f"Export {plural(len(found), 'question')} as a question set",
        data=to_question_set(found),
        file_name="questions-gaps.jsonl",
        mime="application/jsonl",
        icon=":material/download:",
        on_click="ignore",
        help="Check them with python -m index eval --questions questions-gaps.jsonl; once a document answers "
        "one, put a piece of its answering sentence in its answer field.",
    )


def _local(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp
