"""Where the knowledge base's folders and model come from, resolved once per process.

Each entry point (`python -m ingest`, `python -m index`, the app) builds one
`Config` when it starts, from its command-line flags, then the `KB_*`
environment variables, then the defaults, and passes it down; nothing below
the entry points reads the environment for these settings.

    KB_INDEX      the index folder (default data/index)
    KB_CORPUS     the documents folder (default corpus)
    KB_EMBEDDER   the embedder by registered name: onnx (default), onnx-int8, onnx-int8-blocks, torch, fake
    KB_CACHE_DIR  where the exported ONNX model is kept (default ~/.cache/kb)
    KB_KEEP_VERSIONS  previous index versions kept while readers hold them (default 1)
    KB_BATCH_QUESTIONS  tuning: questions a server embeds in one model pass at most (default 16; 0 or 1 turns batching off)
    KB_ANSWERS_KEPT  tuning: answers a searcher keeps for repeated questions (default 256; 0 keeps none)

The same entry points also set this process's thread counts once
(`one_thread_per_question`) instead of each question changing them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_INDEX = Path("data/index")
DEFAULT_CORPUS = Path("corpus")
DEFAULT_EMBEDDER = "onnx"
DEFAULT_KEEP_VERSIONS = 1
DEFAULT_BATCH_QUESTIONS = 16
# Answers a searcher keeps, by question and options: repeated questions (the app's example chips,
# shared links, a user asking again) are answered without the model (bench/query.py).
DEFAULT_ANSWERS_KEPT = 256


@dataclass(frozen=True)
class Config:
    """The folders and model one run works with.

    Attributes:
        index: The index folder.
        corpus: The documents folder (or one file).
        embedder: A name registered in `index.embed.registry` ("onnx", "onnx-int8", "onnx-int8-blocks", "torch", "fake").
        cache_dir: Where the exported ONNX model is cached; None for `~/.cache/kb`.
        keep_versions: Previous index versions a build keeps while readers hold them; one
            no reader holds is removed at once (`index.store.pointer.remove_old_versions`).
        batch_questions: Questions asked of a server at the same time that share one model pass, at
            most (`index.embed.batching`, and the Ray Serve router's `serve.batch`); 0 or 1 embeds each alone.
            A tuning knob: answers are the same either way.
        answers_kept: Answers a searcher keeps for repeated questions (`index.search.searcher`); 0 keeps
            none. A tuning knob too: a kept answer is the one the question got from the same index version.
    """

    index: Path = DEFAULT_INDEX
    corpus: Path = DEFAULT_CORPUS
    embedder: str = DEFAULT_EMBEDDER
    cache_dir: Path | None = None
    keep_versions: int = DEFAULT_KEEP_VERSIONS
    batch_questions: int = DEFAULT_BATCH_QUESTIONS
    answers_kept: int = DEFAULT_ANSWERS_KEPT

    @classmethod
    def resolve(
        cls,
        *,
        index: Path | None = None,
        corpus: Path | None = None,
        embedder: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Config:
        """Flags (the arguments) first, then `KB_*` variables of `environ` (default: this process's), then defaults."""
        env = os.environ if environ is None else environ
        return cls(
            index=index or _path(env, "KB_INDEX") or DEFAULT_INDEX,
            corpus=corpus or _path(env, "KB_CORPUS") or DEFAULT_CORPUS,
            embedder=embedder or env.get("KB_EMBEDDER") or DEFAULT_EMBEDDER,
            cache_dir=_path(env, "KB_CACHE_DIR"),
            keep_versions=_count(env, "KB_KEEP_VERSIONS", DEFAULT_KEEP_VERSIONS),
            batch_questions=max(1, _count(env, "KB_BATCH_QUESTIONS", DEFAULT_BATCH_QUESTIONS)),
            answers_kept=_count(env, "KB_ANSWERS_KEPT", DEFAULT_ANSWERS_KEPT),
        )


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise ValueError(f"{name} must be a whole number, 0 or more; got {value!r}")
    return int(value)


def _path(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name)
    return Path(value) if value else None


def one_thread_per_question() -> None:
    """Run FAISS and torch single-threaded in this process; entry points that answer questions call it once.

    One question's search is too little work to share between OpenMP
    threads, and on a busy machine threads waiting for each other cost far
    more than they save (bench/RESULTS.md, "Threads per question"). Setting
    this once per process, rather than around each question, keeps threads
    that share a searcher from undoing each other's settings. ONNX Runtime
    sets threads per session and is not affected: its question session uses
    every core (`index.embed.onnx_model.OnnxRunner`).
    """
    import faiss

    global _ONE_THREAD
    faiss.omp_set_num_threads(1)
    _ONE_THREAD = True
    torch_loaded()


# Whether this process asked for one thread per question (torch may be imported only later, if at all).
_ONE_THREAD = False


def torch_loaded() -> None:
    """Apply `one_thread_per_question` to torch once it is imported; the torch backend calls this.

    Importing torch only to set its thread count would cost most of the time
    to the first answer (bench/RESULTS.md, "Importing torch at start-up"), and
    the default ONNX backend never uses it.
    """
    torch = sys.modules.get("torch")
    if _ONE_THREAD and torch is not None:
        torch.set_num_threads(1)
