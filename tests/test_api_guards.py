"""The API's guards of issue 23: a question that is not text, the Host header, and /readyz naming a failed version.

Through FastAPI's TestClient over the local backend; the same `create_app`
serves the Ray Serve router (`index.serve.ray_serve.Router`), whose checks
are tested in the `ray` tier (tests/test_ray_cluster.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from index.config import Config
from index.embed.fake import FakeEmbedder
from index.serve.app import LocalBackend, create_app
from ingest.pipeline import build


@pytest.fixture
def index_dir(tiny_corpus: Path, tmp_path: Path) -> Path:
    build(tiny_corpus, tmp_path / "idx", FakeEmbedder())
    return tmp_path / "idx"


@pytest.fixture(autouse=True)
def fake_model(monkeypatch, thread_counts_restored):
    monkeypatch.setenv("KB_EMBEDDER", "fake")


def client_for(index_dir: Path, **options) -> TestClient:
    backend = LocalBackend(Config(index=index_dir, embedder="fake"), poll=0.05)
    return TestClient(create_app(backend, **options), base_url="http://localhost", raise_server_exceptions=False)


def wait_for(check, timeout: float = 30.0):
    """`check()`'s first true result, polled (the shared polling helper of tests/helpers.py may replace it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"not true within {timeout} s")


def ready(client: TestClient) -> dict:
    return wait_for(lambda: client.get("/readyz").status_code == 200 and client.get("/readyz").json())


def test_a_lone_surrogate_in_a_question_is_a_422_with_the_reason(index_dir):
    """Before: HTTP 500 and a traceback in the log."""
    with client_for(index_dir) as client:
        ready(client)
        response = client.post(
            "/query", content=b'{"query": "\\ud800 hip"}', headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"].startswith(
            "query is not valid text: it holds U+D800 at character 1, a lone UTF-16 surrogate"
        )
        assert client.post("/query", json={"query": "hip flexors"}).status_code == 200
