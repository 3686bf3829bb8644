"""The Documents page: every document with its status, and (for those allowed) adding, replacing and deleting.

Each change is made to the corpus folder at once (through `ingest.uploads`
and `ingest.documents`, which never write or delete outside it) and then
asks for a build; a change made while a build runs is picked up by the next
one, and the person is told so. Nothing is overwritten or deleted without a
confirmation: an upload whose name is taken asks "replace?", and Delete asks
again. Reading this page is open to everyone; changing needs `can_edit`.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

import streamlit as st

from index.counting import document_count
from index.evaluate import QuestionSetReport, evaluate_questions, read_questions
from index.records import DocumentInfo
from index.search.searcher import Searcher
from index.store.version import SourceFile
from ingest.documents import (
    DocumentEntry,
    DocumentNotFound,
    Status,
    delete_document,
    document_path,
    list_documents,
    read_original,
)
from ingest.loaders import SUPPORTED_SUFFIXES
from ingest.uploads import MAX_UPLOAD_BYTES, NameTaken, Outcome, UploadRejected, save_upload, uploads_size
from ui.access import TooManyGuesses, check_password
from ui.errors import log_error, redact
from ui.feedback import feedback_panel
from ui.markdown import escape_markdown
from ui.progress import plural
from ui.resources import EDITOR, AppContext
from ui.status import REBUILDING_NOTE, TOASTS, build_status, clear_banner, request_build

ROUND = "kb_upload_round"  # bumped to empty the file chooser after adding
REPLACE = "kb_replace"  # uploads waiting for "replace?"
DELETE = "kb_delete"  # the document waiting for "delete?"
ASK_PAGE = "app_pages/ask.py"
DOCUMENT_PAGE = "app_pages/document.py"


@dataclass(frozen=True)
class PendingReplace:
    """An upload whose name is taken, kept until the person says replace or keep."""

    filename: str
    data: bytes
    existing: str


@st.cache_resource(max_entries=4, show_spinner="Running the question set…")
def get_quality(_searcher: Searcher, version: str, questions: str, modified_ns: int) -> QuestionSetReport:
    """The question set's scores for one index version (recomputed when either changes)."""
    return evaluate_questions(_searcher, read_questions(Path(questions)))


def documents_page(app: AppContext) -> None:
    st.title("Documents", anchor=False)
    searcher = app.searcher_or_none()
    entries = list_entries(app, searcher)
    st.caption(summary(entries, searcher.stored.documents if searcher is not None else ()))
    build_status(app.job, show_others=True)
    if app.access.read_only:
        st.info("This knowledge base is read-only: documents are added and changed by whoever runs it.")
    elif not app.can_edit:
        unlock(app)
    else:
        add_documents(app)
        confirm_replacements(app)
    document_table(entries)
    manage(app, entries)
    quality_panel(app, searcher)
    feedback_panel(app, searcher)


def list_entries(app: AppContext, searcher: Searcher | None) -> list[DocumentEntry]:
    return list_documents(app.corpus, searcher.stored if searcher is not None else None)


def summary(entries: list[DocumentEntry], indexed: Sequence[DocumentInfo] = ()) -> str:
    """ "8 documents (307 counting each .jsonl record) · 8 indexed": files, as every page counts them."""
    present = [e for e in entries if e.status is not Status.REMOVED]
    counts = {status: sum(e.status is status for e in entries) for status in Status}
    per_file = Counter(d.source for d in indexed)
    records = sum(max(per_file[e.source], 1) for e in present)
    parts = [document_count(len(present), records)]
    parts += [f"{counts[s]:,} {s.label}" for s in (Status.INDEXED, Status.PENDING, Status.SKIPPED) if counts[s]]
    if counts[Status.REMOVED]:
        parts.append(f"{counts[Status.REMOVED]:,} deleted, still answering until the next update")
    return " · ".join(parts)


def unlock(app: AppContext, why: str = "Adding, replacing and deleting documents needs the admin password.") -> None:
    with st.form("unlock", border=True):
        st.markdown(why)
        given = st.text_input("Admin password", type="password")
        if st.form_submit_button("Unlock editing"):
            try:
                right = check_password(app.access, given)
            except TooManyGuesses as exc:
                minutes = max(1, math.ceil(exc.retry_after / 60))
                st.error(f"Too many wrong passwords were tried lately; try again in {plural(minutes, 'minute')}.")
                return
            if right:
                st.session_state[EDITOR] = True
                st.rerun()
            time.sleep(1)  # a wrong guess costs its session a second too
            st.error("That is not the admin password.")


def add_documents(app: AppContext) -> None:
    st.subheader("Add documents", anchor=False)
    round_ = st.session_state.setdefault(ROUND, 0)
    types = sorted(s.lstrip(".") for s in SUPPORTED_SUFFIXES)
    files = st.file_uploader(
        f"Up to {MAX_UPLOAD_BYTES // 2**20} MB each",
        type=types,
        accept_multiple_files=True,
        key=f"uploads-{round_}",
    )
    with st.container(horizontal=True):  # right under the chosen files, on a phone too
        add = st.button("Add to the knowledge base", type="primary", disabled=not files)
        rebuild = st.button("Rebuild from the folder", help="Pick up files changed on the server")
    used = uploads_size(app.corpus)
    st.caption(
        f"Uploads use {used / 2**20:,.1f} MB of {app.access.upload_quota / 2**20:,.0f} MB. "
        "A file whose name is already here replaces it, after you confirm."
    )
    if add and files:
        clear_banner()
        save_all(app, files)
        st.session_state[ROUND] = round_ + 1
        st.rerun()
    if rebuild:
        clear_banner()
        request_build(app.job, rebuild=True)
        st.rerun()


def save_all(app: AppContext, files) -> None:
    """Store the chosen files; ask about taken names; ask for a build when something changed."""
    notes: list[str] = []
    saved: list[tuple[str, Outcome]] = []
    for upload in files:
        try:
            result = save_upload(app.corpus, upload.name, upload.getvalue(), quota=app.access.upload_quota)
        except NameTaken as exc:
            ask_to_replace(PendingReplace(upload.name, upload.getvalue(), exc.existing))
            continue
        except UploadRejected as exc:
            notes.append(f"Not added: {exc}")
            continue
        except OSError as exc:
            log_error(f"saving the upload {upload.name!r}", exc)
            notes.append(f"Not added: {upload.name!r} could not be saved; try again later.")
            continue
        saved.append((result.source, result.outcome))
    if any(outcome is not Outcome.UNCHANGED for _, outcome in saved):
        if request_build(app.job, saved=tuple(saved)):
            notes.append(REBUILDING_NOTE)
    else:
        notes.extend(f"Already there, unchanged: {source}" for source, _ in saved)
    st.session_state.setdefault(TOASTS, []).extend(notes)


def ask_to_replace(pending: PendingReplace) -> None:
    """Queue the question "replace?"; one per document, the newest choice winning (its buttons are keyed by the document)."""
    waiting = [p for p in st.session_state.get(REPLACE, []) if p.existing != pending.existing]
    st.session_state[REPLACE] = [*waiting, pending]


def confirm_replacements(app: AppContext) -> None:
    for pending in list(st.session_state.get(REPLACE, [])):
        with st.container(border=True):
            st.warning(
                escape_markdown(
                    f"A different {pending.existing} is already in the knowledge base. Replace it with the "
                    f"{pending.filename} you chose? Its old text stops answering after the update."
                ),
                icon=":material/swap_horiz:",
            )
            with st.container(horizontal=True):
                replace = st.button("Replace", key=f"replace-{pending.existing}", type="primary")
                keep = st.button("Keep the current one", key=f"keep-{pending.existing}")
        if replace or keep:
            st.session_state[REPLACE].remove(pending)
        if keep:
            st.rerun()
        if replace:
            clear_banner()
            try:
                result = save_upload(
                    app.corpus, pending.filename, pending.data, replace=True, quota=app.access.upload_quota
                )
            except UploadRejected as exc:
                st.session_state.setdefault(TOASTS, []).append(f"Not replaced: {exc}")
            else:
                if request_build(app.job, saved=((result.source, result.outcome),)):
                    st.session_state.setdefault(TOASTS, []).append(REBUILDING_NOTE)
            st.rerun()


def document_table(entries: list[DocumentEntry]) -> None:
    if not entries:
        st.info("There are no documents yet.")
        return
    st.dataframe(
        [
            {  # what matters most first: a phone shows only the first columns
                "document": e.source,
                "status": e.status.label,
                "why": e.reason,
                "passages": e.passages,
                "size": _size(e.size),
                "type": e.kind,
                "added": datetime.fromtimestamp(e.modified).strftime("%Y-%m-%d %H:%M") if e.modified else "",
            }
            for e in entries
        ],
        hide_index=True,
        width="stretch",
        column_config={"why": st.column_config.TextColumn("why", width="large")},
    )
    reasons = [e for e in entries if e.reason]
    if reasons:  # a table cell cuts a long reason ("binary f…"): each is said whole here
        st.markdown(
            "**Why some documents are not (all) indexed**  \n"
            + "  \n".join(f"{escape_markdown(e.source)}: {escape_markdown(e.reason)}" for e in reasons)
        )


def _size(size: int | None) -> str:
    if size is None:
        return ""
    for unit in ("bytes", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:,} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return ""


def manage(app: AppContext, entries: list[DocumentEntry]) -> None:
    present = [e for e in entries if e.status is not Status.REMOVED and e.size is not None]
    if not present:
        return
    st.subheader("Open or delete a document", anchor=False)
    chosen = st.selectbox(
        "Document", [e.source for e in present], index=None, placeholder="Choose a document", key="kb_manage"
    )
    entry = next((e for e in present if e.source == chosen), None)
    if entry is None:
        return
    status = entry.status.label + (f": {entry.reason}" if entry.reason else "")
    st.markdown(escape_markdown(f"{entry.source} · {_size(entry.size)} · {status}"))
    try:
        path = document_path(app.corpus, entry.source)
    except DocumentNotFound:
        st.warning("This document is gone from the folder.")
        return
    recorded = _recorded(app, entry)
    with st.container(horizontal=True):
        st.page_link(DOCUMENT_PAGE, label="Open", icon=":material/article:", query_params={"source": entry.source})
        st.download_button(
            "Download",
            data=partial(read_original, app.corpus, entry.source, recorded),  # read on click, by the one rule
            file_name=path.name,
            icon=":material/download:",
            on_click="ignore",
            disabled=recorded is None,
            help="Downloadable once the index has read this version of the file." if recorded is None else None,
        )
        if app.can_edit and st.button("Delete…", icon=":material/delete:"):
            st.session_state[DELETE] = entry.source
    if app.can_edit and st.session_state.get(DELETE) == entry.source:
        confirm_delete(app, entry.source)


def _recorded(app: AppContext, entry: DocumentEntry) -> SourceFile | None:
    """The live index's record of the entry's file, when the file is still the one it read (else no download)."""
    searcher = app.searcher_or_none()
    if searcher is None or entry.status is Status.PENDING:
        return None
    return searcher.stored.sources.get(entry.source)


def confirm_delete(app: AppContext, source: str) -> None:
    with st.container(border=True):
        st.warning(
            escape_markdown(f"Delete {source}? The file is removed and its text stops answering after the update."),
            icon=":material/delete:",
        )
        with st.container(horizontal=True):
            delete = st.button("Delete", type="primary", key="confirm-delete")
            cancel = st.button("Cancel", key="cancel-delete")
    if cancel:
        st.session_state.pop(DELETE, None)
        st.rerun()
    if delete:
        st.session_state.pop(DELETE, None)
        clear_banner()
        try:
            delete_document(app.corpus, source)
        except DocumentNotFound:
            st.session_state.setdefault(TOASTS, []).append(f"{source} was already gone.")
        except OSError as exc:
            log_error(f"deleting {source!r}", exc)
            st.session_state.setdefault(TOASTS, []).append(f"{source} could not be deleted; try again later.")
        else:
            if request_build(app.job, deleted=(source,)):
                st.session_state.setdefault(TOASTS, []).append(
                    "A rebuild is running; the deletion takes effect when the next one finishes."
                )
        st.session_state.pop("kb_manage", None)
        st.rerun()


def quality_panel(app: AppContext, searcher: Searcher | None) -> None:
    """Scores on the question set beside the documents, so a rebuild's effect is visible."""
    questions = app.corpus / "questions.jsonl"
    if searcher is None or not questions.is_file():
        return
    with st.expander("How well it answers the sample questions"):
        st.caption(escape_markdown(f"The questions and their answers are in {questions.name}."))
        key = (searcher.stored.path.name, str(questions), questions.stat().st_mtime_ns)
        if st.button("Check now") or st.session_state.get("kb_quality") == key:
            st.session_state["kb_quality"] = key
            try:
                report = get_quality(searcher, *key)
            except ValueError as exc:  # the set's own mistake, said without the server's path
                st.error(escape_markdown(redact(str(exc))))
                return
            st.markdown(
                f"The right passage came first for **{report.recall_at_1:.0%}** of "
                f"{plural(report.on_topic, 'question')}, and among the first three for **{report.recall_at_3:.0%}**.  \n"
                f"Answered **{report.answered_on_topic} of {report.on_topic}** questions the documents cover; "
                f"said there is no answer to **{report.refused_off_topic} of {report.off_topic}** they do not."
            )
