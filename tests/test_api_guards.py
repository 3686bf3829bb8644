"""The API's guards of issue 23: a question that is not text, the Host header, and /readyz naming a failed version.

Through FastAPI's TestClient over the local backend; the same `create_app`
serves the Ray Serve router (`index.serve.ray_serve.Router`), whose checks
are tested in the `ray` tier (tests/test_ray_cluster.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from index.config import Config
from index.embed.fake import FakeEmbedder
from index.serve.app import LocalBackend, create_app
from ingest.pipeline import build
from tests.helpers import wait_for


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


def ready(client: TestClient) -> dict:
    return wait_for(
        lambda: client.get("/readyz").status_code == 200 and client.get("/readyz").json(), what="the API ready"
    )


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


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST"])
def test_this_machines_names_are_allowed_hosts(index_dir, host):
    with client_for(index_dir) as client:
        ready(client)
        response = client.post("/query", json={"query": "hip flexors"}, headers={"host": host})
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "", "[::2]:80"])
def test_a_foreign_host_is_a_400_before_anything_is_read(index_dir, host):
    """A DNS-rebinding page's requests carry its own name; before, they were answered (issue 23, N9)."""
    with client_for(index_dir) as client:
        ready(client)
        for method, path in (("post", "/query"), ("get", "/documents"), ("get", "/info"), ("get", "/readyz")):
            response = client.request(method, path, json={"query": "hip"}, headers={"host": host})
            assert response.status_code == 400, (path, response.text)
            assert "is not allowed; this server answers to 127.0.0.1, [::1], localhost" in response.json()["detail"]


def test_allowed_hosts_are_configurable(index_dir, monkeypatch):
    from index.serve.app import allowed_hosts_from

    with client_for(index_dir, allowed_hosts=allowed_hosts_from("kb.internal, Other.Example")) as client:
        assert client.get("/healthz", headers={"host": "kb.internal:8000"}).status_code == 200
        assert client.get("/healthz", headers={"host": "other.example"}).status_code == 200
        assert client.get("/healthz", headers={"host": "localhost"}).status_code == 400
    with client_for(index_dir, allowed_hosts=("*",)) as client:
        assert client.get("/healthz", headers={"host": "anything.example"}).status_code == 200
    assert allowed_hosts_from("") == ("localhost", "127.0.0.1", "[::1]")


def test_no_cross_origin_reads_are_allowed(index_dir):
    with client_for(index_dir) as client:
        ready(client)
        origin = {"origin": "http://evil.example"}
        response = client.post("/query", json={"query": "hip flexors"}, headers=origin)
        assert response.status_code == 200
        assert not any(name.lower().startswith("access-control-") for name in response.headers)
        preflight = client.options(
            "/query", headers={**origin, "access-control-request-method": "POST"}
        )  # no CORS handler: the browser is told nothing it may share
        assert "access-control-allow-origin" not in preflight.headers


def test_the_ray_router_serves_the_same_guarded_app(index_dir):
    """The ingress of `--ray`, built as Serve builds it (no Ray started): host, token and body size checked alike."""
    ray_serve = pytest.importorskip("index.serve.ray_serve")
    from index.serve.app import MAX_BODY_BYTES

    # Serve's ingress wraps the class in one whose __init__ is a coroutine; the class as written is next in line.
    written = ray_serve.Router.func_or_class.__mro__[1]
    assert written.__qualname__ == "Router" and "__serve_build_asgi_app__" in vars(written)
    router = written(Config(index=index_dir, embedder="fake"), "s3cret", ("localhost", "127.0.0.1", "[::1]"))
    client = TestClient(router.__serve_build_asgi_app__(), base_url="http://localhost")  # the backend not started
    foreign = client.post("/query", json={"query": "hip"}, headers={"host": "evil.example"})
    assert foreign.status_code == 400 and "is not allowed" in foreign.json()["detail"]
    assert client.post("/query", json={"query": "hip"}).status_code == 401
    big = client.post("/query", content=b"x" * (MAX_BODY_BYTES + 1), headers={"authorization": "Bearer s3cret"})
    assert big.status_code == 413
    surrogate = client.post(
        "/query",
        content=b'{"query": "\\ud800 hip"}',
        headers={"authorization": "Bearer s3cret", "content-type": "application/json"},
    )
    assert surrogate.status_code == 422 and "not valid text" in surrogate.json()["detail"]


def test_readyz_names_a_version_that_failed_to_load_while_the_old_one_answers(index_dir):
    """Before: {"ready": true, "version": <old>} and nothing about the failure (issue 23, N11)."""
    import shutil

    from index.store.pointer import switch_pointer

    with client_for(index_dir) as client:
        first = ready(client)["version"]
        broken = index_dir / "v-20990101T000000-broken"
        shutil.copytree(index_dir / first, broken)
        (broken / "documents.json").unlink()
        switch_pointer(index_dir, broken.name)
        status = wait_for(lambda: client.get("/readyz").json().get("failed"), what="/readyz naming the failed version")
        assert status["version"] == broken.name
        assert f"index file {broken / 'documents.json'} is missing" in status["detail"]
        body = client.get("/readyz").json()
        assert body["ready"] is True and body["version"] == first  # the old version keeps answering
        assert client.post("/query", json={"query": "hip flexors"}).status_code == 200
        switch_pointer(index_dir, first)  # put right: the failure is no longer reported
        wait_for(lambda: "failed" not in client.get("/readyz").json(), what="/readyz no longer naming a failure")
