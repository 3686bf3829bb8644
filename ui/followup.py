"""A follow-up question without a subject of its own ("and how long is the recovery?") read with the previous one's.

Every question is searched on its own, so "and how long is the recovery?"
after "what is spinal fusion?" found nothing about spinal fusion. Two
remedies were measured on written follow-ups (`bench/followups.py`,
bench/RESULTS.md "Follow-up questions"): carrying the previous question's
subject into the search, or answering as asked and only offering it. Carrying
found the right passage first far more often and changed nothing for
questions that have a subject of their own (the detector leaves them
alone), so the page carries it and says so, with a button to ask the
question on its own.

A question needs a subject when it opens like a continuation ("and …",
"what about …", "also …"), points back ("it", "they", "that" …) with at
most one word of content once question words and common verbs are set
aside, or has no word of content at all.
"""

from __future__ import annotations

import re

from ui.markdown import escape_markdown

_WORD = re.compile(r"[\w'’]+")
_OPENINGS = ("and ", "what about ", "how about ", "also ", "then ", "so ", "but ")
_POINTERS = frozenset("it its it's they them their theirs those these that this he she his her one ones".split())
_FUNCTION = frozenset(
    """a an the and or but so then also of in on at to for from with by about as into over under after before
    is are was were be been being am do does did done doing have has had having can could should would will
    shall may might must i you we me my your our us what which who whom whose when where why how whether
    there here than too very much many more most long often soon each any some all no not if else just still
    really please tell me know get got take takes taken make makes usually normally typically again other
    thing things way ways time times help helps happen happens come comes go goes work works mean means need
    needs use feel feels like""".split()
)


def words(question: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(question)]


def content_words(question: str) -> list[str]:
    """The words that carry a question's subject (function words, question words and pointers set aside)."""
    return [w for w in words(question) if w not in _FUNCTION and w not in _POINTERS and len(w) > 1]


def needs_subject(question: str) -> bool:
    """Whether `question` leans on an earlier one for its subject."""
    text = " ".join(words(question))
    if text.startswith(_OPENINGS):
        return True
    content = content_words(question)
    if any(w in _POINTERS for w in words(question)):
        return len(content) <= 1  # "what causes it?"; not "can fusion surgery wreck the discs next to it"
    return not content


def carried(question: str, previous: str | None) -> str | None:
    """The question to search: `question` with `previous`'s subject added, or None when it needs none or has none."""
    if not previous or not needs_subject(question):
        return None
    subject = [w for w in content_words(previous) if w not in set(content_words(question))]
    if not subject:
        return None
    return f"{question.strip()} ({' '.join(subject)})"


PREVIOUS = "kb_previous_subject"  # the last question this session asked that had a subject of its own
ALONE = "kb_ask_alone"  # a follow-up the person asked to search on its own


def read_with_previous(question: str) -> str:
    """What the Ask page searches for `question`: with the previous question's subject when it has none.

    Says so on the page, with a button to search the question on its own instead.
    """
    import streamlit as st

    previous = st.session_state.get(PREVIOUS)
    search = carried(question, previous) if st.session_state.get(ALONE) != question else None
    if not needs_subject(question):
        st.session_state[PREVIOUS] = question
    if search is None:
        return question
    with st.container(horizontal=True, vertical_alignment="center", key="follow-up"):
        st.caption(
            "Each question is searched on its own, so this one was read with the subject of your previous "
            f"question: \u201c{escape_markdown(search)}\u201d."
        )
        st.button("Ask it on its own", on_click=_alone, args=(question,))
    return search


def _alone(question: str) -> None:
    import streamlit as st

    st.session_state[ALONE] = question
