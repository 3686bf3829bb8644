"""Shared fixtures: the deterministic fake embedder and a tiny corpus."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from index.embed.fake import FakeEmbedder
from tests.helpers import TINY_DOCS, write_corpus

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """Three small documents in two folders, one paragraph repeated across files, a junk line."""
    return write_corpus(tmp_path / "corpus", TINY_DOCS)


@pytest.fixture
def thread_counts_restored():
    """For tests that run an entry point in this process: it sets FAISS and torch to one thread for good."""
    import faiss
    import torch

    before = faiss.omp_get_max_threads(), torch.get_num_threads()
    yield
    faiss.omp_set_num_threads(before[0])
    torch.set_num_threads(before[1])


@pytest.fixture
def stopped_clock(monkeypatch) -> float:
    """The clock a build's progress reads (`ingest.jobs`), stopped: a rate or a time left comes out exact.

    Returns the moment it shows; a test builds its `JobState` relative to it.
    """
    import ingest.jobs

    now = 1000.0
    monkeypatch.setattr(ingest.jobs, "time", SimpleNamespace(monotonic=lambda: now))
    return now
