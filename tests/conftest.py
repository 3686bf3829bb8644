"""Shared fixtures: the deterministic fake embedder and a tiny corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from index.testing import FakeEmbedder
from tests.helpers import TINY_DOCS, write_corpus

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """Three small documents in two folders, one paragraph repeated across files, a junk line."""
    return write_corpus(tmp_path / "corpus", TINY_DOCS)
