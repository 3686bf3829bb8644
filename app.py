"""The knowledge base in the browser: ask, read cited answers, add documents.

A thin Streamlit layer over the library: `index` answers, `ingest` saves
uploads and rebuilds in the background. Model and index load once per process
(`st.cache_resource`); a rebuild never interrupts answering, because
questions go to the published index until the new one replaces it.

Run it with `make run` (or `streamlit run app.py`). KB_CORPUS, KB_INDEX and
KB_EMBEDDER choose the folders and the model (`index.config.Config`,
resolved at the top of the script, the page's entry point). Markdown comes
from `ui.markdown`: document text is always escaped.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from index.config import Config, one_thread_per_question
from index.display import NO_ANSWER
from index.embedding import Embedder, embedder_for
from index.errors import StoreError
from index.evaluate import QuestionSetReport, evaluate_questions, read_questions
from index.records import Answer, Hit
from index.search import MAX_QUERY_CHARS, RetrievalMode, Searcher
from index.store import live_version, load
from ingest.jobs import BuildJob
from ingest.loaders import SUPPORTED_SUFFIXES
from ingest.pipeline import changed_sources
from ingest.uploads import MAX_UPLOAD_BYTES, UploadRejected, save_upload
from ui.markdown import context_markdown, escape_markdown, hit_heading, hit_highlight

CONFIG = Config.resolve()
CORPUS, INDEX = CONFIG.corpus, CONFIG.index
EXAMPLES = (
    "How long does a broken vertebra take to heal?",
    "What muscles are the hip flexors?",
    "When should back pain be investigated by a doctor?",
    "How often should I ice a painful hip?",
)
ASK_IN_WORDS = "Ask a question in words, for example one of the buttons above."


@st.cache_resource(show_spinner="Loading the language model…")
def get_embedder(config: Config) -> Embedder:
    """The configured model, loaded once per process (which also sets its thread counts, once)."""
    one_thread_per_question()
    embedder = embedder_for(config)
    embedder.encode(["warm up"])  # load weights now, not on the first question
    return embedder


@st.cache_resource(max_entries=2, show_spinner="Loading the index…")
def get_searcher(index_dir: str, version: str) -> Searcher:
    """One searcher per published version: a rebuild changes `version` and so the cache key."""
    embedder = get_embedder(CONFIG)
    return Searcher(load(Path(index_dir), model=embedder.name), embedder)


@st.cache_resource(max_entries=4, show_spinner="Running the question set…")
def get_quality(index_dir: str, version: str, questions: str, modified_ns: int) -> QuestionSetReport:
    """The question set's scores for one index version (recomputed when either changes)."""
    return evaluate_questions(get_searcher(index_dir, version), read_questions(Path(questions)))


@st.cache_resource
def get_build_job(corpus: str, index_dir: str) -> BuildJob:
    return BuildJob(Path(corpus), Path(index_dir), get_embedder(CONFIG))


def main() -> None:
    st.set_page_config(page_title="Knowledge base", page_icon="📚")
    st.title("Ask the knowledge base")
    st.caption(f"Answers come from the documents in {escape_markdown(str(CORPUS))}, with citations.")
    job = get_build_job(str(CORPUS), str(INDEX))
    with st.container():  # the fragment's changing content stays in its own block, apart from the question box
        build_status(job)

    try:
        searcher = get_searcher(str(INDEX), live_version(INDEX).name)
    except StoreError as exc:
        show_index_problem(exc, job)
        sidebar_uploads(job)
        return

    sources, k = sidebar(searcher, job)
    query = question_box()
    if query:
        answer = searcher.search(query, k=k, sources=frozenset(sources) if sources else None)
        if answer.query:
            show_answer(answer, searcher)
        else:  # only control characters: nothing left to search
            st.info(ASK_IN_WORDS)


def question_box() -> str:
    if "query" not in st.session_state:
        # A link may carry a longer question than the box accepts; the search would cut it anyway.
        st.session_state.query = st.query_params.get("q", "")[:MAX_QUERY_CHARS]
    st.text_input(
        "Your question",
        key="query",
        max_chars=MAX_QUERY_CHARS,
        placeholder="e.g. how long does a broken vertebra take to heal?",
    )
    columns = st.columns(len(EXAMPLES))
    for column, example in zip(columns, EXAMPLES):
        column.button(example, on_click=_set_query, args=(example,), use_container_width=True)
    query = st.session_state.query.strip()
    if query:
        st.query_params["q"] = query
    elif "q" in st.query_params:
        del st.query_params["q"]
    return query


def _set_query(text: str) -> None:
    st.session_state.query = text


def show_answer(answer: Answer, searcher: Searcher) -> None:
    if not answer.hits:
        st.warning(NO_ANSWER)
        return
    if answer.answered:
        for hit in answer.hits:
            hit_card(hit, searcher)
    else:
        st.warning(NO_ANSWER)
        with st.expander("Nearest passages (weak matches, probably not answers)", expanded=False):
            for hit in answer.hits:
                hit_card(hit, searcher)
    with st.expander("Why this order? (dense, keyword and fused ranks)"):
        st.dataframe(
            [
                {
                    f"{RetrievalMode.HYBRID.label} rank": hit.rank,
                    f"{RetrievalMode.DENSE.label} rank": hit.dense_rank,
                    f"{RetrievalMode.KEYWORD.label} rank": hit.keyword_rank,
                    "similarity": round(hit.similarity, 3),
                    "source": hit.passage.location.cite(),
                }
                for hit in answer.hits
            ],
            hide_index=True,
        )


def hit_card(hit: Hit, searcher: Searcher) -> None:
    with st.container(border=True):
        st.markdown(hit_heading(hit))
        st.markdown(hit_highlight(hit))
        st.caption(f"score {hit.score:.4f} · similarity {hit.similarity:.2f}")
        with st.expander("Show in document"):
            for neighbour in searcher.context(hit.passage.location, before=1, after=1):
                st.markdown(context_markdown(hit, neighbour.location, neighbour.text, neighbour.is_hit))


def sidebar(searcher: Searcher, job: BuildJob) -> tuple[list[str], int]:
    manifest = searcher.stored.manifest
    with st.sidebar:
        st.header("Index")
        st.markdown(
            f"**{manifest.documents}** documents · **{manifest.passages}** passages  \n"
            f"model {escape_markdown(manifest.model)}  \nbuilt {escape_markdown(manifest.built_at)}"
        )
        changed = changed_sources(CORPUS, searcher.stored) if CORPUS.is_dir() else []
        if changed:
            st.warning(f"{len(changed)} file(s) in the corpus changed since this index was built.")
        else:
            st.success("Up to date with the corpus folder.")
        if manifest.skipped:
            with st.expander(f"{len(manifest.skipped)} file(s) skipped"):
                for item in manifest.skipped:
                    st.text(f"{item.source}: {item.reason}")
        if st.button("Rebuild from corpus folder", disabled=job.state.running):
            job.start()
            st.rerun()
        quality_panel(searcher)

        st.header("Search")
        all_sources = sorted({d.source for d in searcher.stored.documents})
        sources = st.multiselect("Only these documents", all_sources, placeholder="All documents")
        k = st.slider("Number of results", min_value=1, max_value=20, value=5)
    sidebar_uploads(job)
    return sources, k


def quality_panel(searcher: Searcher) -> None:
    """Scores on the question set beside the corpus, so a rebuild's effect is visible."""
    questions = CORPUS / "questions.jsonl"
    if not questions.is_file():
        return
    version = searcher.stored.path.name
    key = (str(INDEX), version, str(questions), questions.stat().st_mtime_ns)
    if st.button("Measure quality on questions.jsonl") or st.session_state.get("quality_key") == key:
        st.session_state.quality_key = key
        try:
            report = get_quality(*key)
        except ValueError as exc:
            st.error(escape_markdown(str(exc)))
            return
        st.markdown(
            f"recall@1 **{report.recall_at_1:.2f}** · recall@3 **{report.recall_at_3:.2f}** · MRR **{report.mrr:.2f}**  \n"
            f"answered {report.answered_on_topic}/{report.on_topic} on-topic, "
            f"refused {report.refused_off_topic}/{report.off_topic} off-topic"
        )


def sidebar_uploads(job: BuildJob) -> None:
    with st.sidebar:
        st.header("Add documents")
        if "upload_round" not in st.session_state:
            st.session_state.upload_round = 0
        files = st.file_uploader(
            f"Up to {MAX_UPLOAD_BYTES // 2**20} MB each",
            type=sorted(s.lstrip(".") for s in SUPPORTED_SUFFIXES),
            accept_multiple_files=True,
            key=f"uploads-{st.session_state.upload_round}",
        )
        if files and st.button("Add to the knowledge base", type="primary", disabled=job.state.running):
            added = save_uploads(files)
            st.session_state.upload_round += 1
            if added:
                job.start()
            st.rerun()


def save_uploads(files) -> int:
    """Store the uploads, queue a message about each (names escaped: they come from the browser); return how many are new."""
    messages, added = [], 0
    for upload in files:
        try:
            path, new = save_upload(CORPUS, upload.name, upload.getvalue())
        except UploadRejected as exc:
            messages.append(f"Not added: {exc}")
            continue
        except OSError as exc:
            messages.append(f"Not added: {upload.name!r} could not be saved ({exc.strerror or exc})")
            continue
        added += new
        messages.append(f"Added {path.relative_to(CORPUS)}" if new else f"Already present: {path.relative_to(CORPUS)}")
    st.session_state.upload_messages = [escape_markdown(m) for m in messages]
    return added


def show_index_problem(error: StoreError, job: BuildJob) -> None:
    st.error(f"The index cannot be used: {escape_markdown(str(error))}")
    if st.button("Build the index now", type="primary", disabled=job.state.running):
        job.start()
        st.rerun()


def build_status(job: BuildJob) -> None:
    """Progress of a background build, refreshed every second while it runs."""

    @st.fragment(run_every=1.0 if job.state.running else None)
    def status() -> None:
        for message in st.session_state.pop("upload_messages", []):
            st.toast(message)
        state = job.state
        if state.running:
            label = state.stage.label if state.stage else ""
            left = f", about {state.seconds_left:.0f}s left" if state.seconds_left is not None else ""
            fraction = state.done / state.total if state.total else 0.0
            st.progress(
                min(fraction, 1.0),
                text=f"{label}: {state.done} of {state.total}{left}. Answers come from the current index meanwhile.",
            )
            st.session_state.build_watched = True
        elif st.session_state.pop("build_watched", False):
            st.rerun()  # the new index is published: refresh everything
        elif state.error:
            st.error(f"Rebuild failed, the previous index is still in use: {escape_markdown(state.error)}")
        elif state.report is not None and state.report.published:
            r = state.report
            st.success(
                f"Index updated: {r.documents} documents, {r.passages} passages ({r.embedded} newly embedded) in {r.seconds:.1f}s."
            )

    status()


main()
