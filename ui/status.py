"""Builds as the person who started them sees them: progress while it runs, then what it did.

A change (uploads, a replacement, a deletion, a rebuild) asks the shared
`BuildJob` for a build and keeps the build's number in this session
(`remember`). `build_status` polls once a second while this session waits
for a build, shows its progress, and once it is done shows what happened to
each file, as toasts and one banner, only here: other sessions never see
another person's messages. Every page shows the progress of a running
build; only the Documents page shows it for builds started elsewhere.
"""

from __future__ import annotations

import streamlit as st

from ingest.jobs import BuildJob
from ui.markdown import escape_markdown
from ui.progress import Change, TimeLeft, fraction, message, progress_text

CHANGES = "kb_changes"  # this session's changes waiting for their build
BANNER = "kb_banner"  # the last finished change's message (level, text)
TOASTS = "kb_toasts"  # messages about single files, shown once
WATCHED = "kb_watched"  # a build ran while this session watched: rerun everything when it ends
TIME_LEFT = "kb_time_left"  # this session's smoothed estimate of the running build's time left
REBUILDING_NOTE = "A rebuild is running; your files will be added when it finishes."


def remember(change: Change) -> None:
    """Wait for `change`'s build in this session."""
    st.session_state.setdefault(CHANGES, []).append(change)


def request_build(job: BuildJob, **change) -> bool:
    """Ask for a build that includes this session's change; returns whether it had to wait for a running build."""
    run, queued = job.request()
    remember(Change(run, **change))
    return queued


def build_status(job: BuildJob, show_others: bool = False) -> None:
    """Progress of the build this session waits for (or any, with `show_others`), then its outcome."""
    waiting = bool(st.session_state.get(CHANGES))

    @st.fragment(run_every=1.0 if waiting or (show_others and job.state.running) else None)
    def status() -> None:
        state = job.state
        finished = False
        for change in list(st.session_state.get(CHANGES, [])):
            result = job.result(change.run)
            if result is None:
                continue
            st.session_state[CHANGES].remove(change)
            said = message(change, result)
            st.session_state.setdefault(TOASTS, []).extend(said.toasts)
            st.session_state[BANNER] = (said.level, said.banner)
            finished = True
        if finished or (st.session_state.get(WATCHED) and not state.running):
            st.session_state.pop(WATCHED, None)
            st.rerun()  # a new index is published: refresh the page around it (the messages show then)
        for toast in st.session_state.pop(TOASTS, []):
            st.toast(escape_markdown(toast))
        mine = bool(st.session_state.get(CHANGES))
        if state.running and (mine or show_others):
            estimate = st.session_state.setdefault(TIME_LEFT, TimeLeft())
            st.progress(fraction(state), text=escape_markdown(progress_text(state, estimate)))
            st.session_state[WATCHED] = True
        if not mine and BANNER in st.session_state:
            level, text = st.session_state[BANNER]
            getattr(st, level)(escape_markdown(text))

    status()


def clear_banner() -> None:
    st.session_state.pop(BANNER, None)
