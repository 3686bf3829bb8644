"""What every page shares: the configuration, who may edit, and the model, index and build job loaded once per process.

`run_page` shows each page (the app's entry points) with `context()`, which
resolves the `Config` (flags are Streamlit's; `KB_*` variables, then
defaults) and the `Access` rules (`KB_READ_ONLY`, `KB_ADMIN_PASSWORD` or the
`admin_password` secret). The model, each published index version and the
background build job are `st.cache_resource`s, shared by every session.
Where a page's searcher comes from is the context's `searchers` (the cached
`get_searcher` unless a session's `SEARCHERS` key names another): the seam
through which tests pass a stub, without patching `Searcher`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from index.config import Config, one_thread_per_question
from index.embed.registry import Embedder, embedder_for
from index.errors import StoreError
from index.search.searcher import Searcher
from index.store.pointer import live_version
from index.store.reader import load
from ingest.jobs import BuildJob
from ingest.logs import quiet_library_logs
from ingest.watch import CorpusWatcher, build_through, watch_enabled
from ui.access import Access
from ui.errors import log_error

EDITOR = "kb_editor"  # session flag: this session gave the admin password
SEARCHERS = "kb_searchers"  # session key: a `SearcherSource` to use instead of `get_searcher` (tests set it)
UNEXPECTED = (
    "Something went wrong while showing this page. It has been logged for whoever runs this knowledge base; "
    "try again in a moment."
)


@st.cache_resource(show_spinner="Loading the language model…")
def get_embedder(config: Config) -> Embedder:
    """The configured model, loaded once per process (which also sets its thread counts, once)."""
    one_thread_per_question()
    quiet_library_logs()
    embedder = embedder_for(config)
    embedder.encode(["warm up"])  # load weights now, not on the first question
    return embedder


@st.cache_resource(max_entries=2, show_spinner="Loading the index…")
def get_searcher(config: Config, version: str) -> Searcher:
    """One searcher per published version: a rebuild changes `version` and so the cache key."""
    embedder = get_embedder(config)
    return Searcher(load(config.index, model=embedder.name), embedder, answers_kept=config.answers_kept)


# Gives the searcher over one published version: (config, version folder name) -> Searcher.
SearcherSource = Callable[[Config, str], Searcher]


@st.cache_resource
def get_build_job(config: Config) -> BuildJob:
    return BuildJob(config.corpus, config.index, get_embedder(config))


@st.cache_resource
def get_corpus_watcher(config: Config) -> CorpusWatcher:
    """The corpus folder watched for the whole process (KB_WATCH=1); its builds queue on the app's build job."""
    return CorpusWatcher(config.corpus, build_through(get_build_job(config))).start()


def _secrets() -> dict:
    try:
        return dict(st.secrets)
    except Exception:  # no secrets.toml anywhere, or an unreadable one: no secrets
        return {}


@dataclass(frozen=True)
class AppContext:
    """The configuration and access rules of this run, and the shared resources they name.

    `searchers` gives the searcher over a published version: the one cached per
    process (`get_searcher`), or a stub that a test passes in.
    """

    config: Config
    access: Access
    searchers: SearcherSource = get_searcher
    watch: bool = False  # KB_WATCH=1: the corpus folder is watched and rebuilt after each change

    @property
    def corpus(self) -> Path:
        return self.config.corpus

    @property
    def job(self) -> BuildJob:
        return get_build_job(self.config)

    def searcher(self) -> Searcher:
        """The searcher over the live index.

        Raises:
            StoreError: There is no usable index.
        """
        return self.searchers(self.config, live_version(self.config.index).name)

    def searcher_or_none(self) -> Searcher | None:
        try:
            return self.searcher()
        except StoreError:
            return None

    @property
    def can_edit(self) -> bool:
        """Whether this session may add, replace and delete documents and rebuild."""
        if self.access.read_only:
            return False
        return self.access.password is None or bool(st.session_state.get(EDITOR))


def context() -> AppContext:
    """This run's configuration and access rules (a setting that means nothing stops the page, saying which)."""
    try:
        searchers = st.session_state.get(SEARCHERS, get_searcher)
        return AppContext(
            Config.resolve(), Access.resolve(secrets=_secrets()), searchers=searchers, watch=watch_enabled()
        )
    except ValueError as exc:
        st.error(f"The app is not set up right: {exc}.")
        st.stop()


def run_page(page: Callable[[AppContext], None]) -> None:
    """Show `page` for this run's context; an unexpected error is logged and shown without its details."""
    app = context()
    try:
        if app.watch:
            get_corpus_watcher(app.config)
        page(app)
    except Exception as exc:  # st.stop and st.rerun are BaseExceptions and pass through
        log_error(f"the page {page.__name__} failed", exc)
        st.error(UNEXPECTED)
