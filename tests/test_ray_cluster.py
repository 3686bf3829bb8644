"""`python -m ingest --ray ADDRESS` and `python -m index serve --ray ADDRESS` join a running Ray cluster (started here with `ray start --head`).

The cluster is a separate set of processes, so the workers get this
project's packages the way a real cluster's would: shipped by the driver
(`runtime_env` py_modules), not from the test's PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from bench.api_server import start_api, stop_api
from bench.app_server import free_port
from index.embed.fake import FakeEmbedder
from index.embed.registry import BundledModel
from index.search.searcher import Searcher
from index.store.reader import load
from ingest.pipeline import build
from tests.helpers import REPO, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.model]

RAY = Path(sys.executable).parent / "ray"


# Ray's token authentication, set up as on a real cluster: one token, given to every node and driver.
CLUSTER_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A one-CPU Ray head node in its own process group; yields its address."""
    port = free_port()
    log = tmp_path_factory.mktemp("ray-head") / "head.log"
    env = {**os.environ, **CLUSTER_ENV}
    command = [str(RAY), "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false", "--block"]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_for(
            lambda: "Ray runtime started" in log.read_text() or process.poll() is not None,
            timeout=120,
            interval=0.5,
            what="ray start --head to start or to exit",
        )
        assert "Ray runtime started" in log.read_text(), f"it exited with {process.returncode}"
    except AssertionError as exc:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"ray start --head did not start ({exc}):\n{log.read_text()}")
    yield f"127.0.0.1:{port}"
    # The head and every process it started share its process group (SIGTERM would drain for 30 s).
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(60)


def ingest(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **CLUSTER_ENV, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "ingest", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def test_ingest_joins_the_cluster_at_an_address_and_matches_a_local_build(head, tiny_corpus, tmp_path):
    index_dir = tmp_path / "ray-idx"
    # The cluster's size, not this machine's, bounds --workers: proof that it joined.
    refused = ingest("--corpus", str(tiny_corpus), "--index", str(index_dir), "--ray", head, "--workers", "2")
    assert refused.returncode == 1, refused.stderr
    assert "--workers must be between 1 and the cluster's 1 CPUs, got 2" in refused.stderr

    done = ingest("--corpus", str(tiny_corpus), "--index", str(index_dir), "--ray", head)
    assert done.returncode == 0, done.stderr
    assert "indexed 3 documents as" in done.stdout
    build(tiny_corpus, tmp_path / "local", BundledModel())
    on_cluster, local = load(index_dir), load(tmp_path / "local")
    assert on_cluster.passages == local.passages
    assert np.allclose(on_cluster.dense.vectors(), local.dense.vectors(), atol=1e-5)
    assert on_cluster.manifest.skipped == local.manifest.skipped


def test_unreachable_address_is_a_clear_error(tiny_corpus, tmp_path):
    result = ingest("--corpus", str(tiny_corpus), "--index", str(tmp_path / "idx"), "--ray", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stderr.startswith("error: no Ray cluster answers at 127.0.0.1:") and "Traceback" not in result.stderr
    assert not (tmp_path / "idx" / "CURRENT").exists()


def test_ray_without_an_address_starts_its_own_instance_beside_a_running_cluster(head, tiny_corpus, tmp_path):
    # Joining the one-CPU head would refuse two workers; a local instance has this machine's CPUs.
    result = ingest("--corpus", str(tiny_corpus), "--index", str(tmp_path / "idx"), "--ray", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert load(tmp_path / "idx").manifest.passages > 0


def test_serve_joins_the_cluster_and_answers_as_one_process(head, tmp_path):
    index_dir = tmp_path / "idx"
    build(REPO / "corpus", index_dir, FakeEmbedder(), shards=2)  # enough passages for two shards
    args = ["--ray", head, "--shards", "2", "--replicas", "1", "--index", str(index_dir)]
    server, url = start_api(args, {**CLUSTER_ENV, "KB_EMBEDDER": "fake"}, tmp_path / "serve.log", timeout=300)
    try:
        searcher = Searcher(load(index_dir), FakeEmbedder())
        with httpx.Client(timeout=60) as client:
            for question in ("spinal fusion bone grafts", "hip flexors stretch", "kyphoplasty balloon"):
                response = client.post(f"{url}/query", json={"query": question, "k": 3})
                assert response.status_code == 200, response.text
                assert response.json() == json.loads(
                    json.dumps(searcher.search(question, 3, suggest=False).to_json(False))
                )
    finally:
        stop_api(server)
    assert "Started a local Ray instance" not in (tmp_path / "serve.log").read_text()  # it joined the head


def test_serve_at_an_unreachable_address_is_a_clear_error(tmp_path):
    build(REPO / "corpus", tmp_path / "idx", FakeEmbedder(), shards=2)
    env = {**os.environ, **CLUSTER_ENV, "KB_EMBEDDER": "fake"}
    args = ["serve", "--ray", f"127.0.0.1:{free_port()}", "--shards", "2", "--index", str(tmp_path / "idx")]
    result = subprocess.run(
        [sys.executable, "-m", "index", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: no Ray cluster answers at 127.0.0.1:") and "Traceback" not in result.stderr


def test_serve_on_ray_checks_the_token_the_body_size_and_the_host(head, tiny_corpus, tmp_path):
    """`--ray` serves the same guarded app as uvicorn (issue 23): 400 for a foreign Host, 401 without the
    token, 413 for a body over the limit, 422 for a question that is not text."""
    from index.serve.app import MAX_BODY_BYTES

    index_dir = tmp_path / "idx"
    build(tiny_corpus, index_dir, FakeEmbedder(), shards=2)
    args = ["--ray", head, "--shards", "2", "--index", str(index_dir), "--allowed-host", "127.0.0.1"]
    args += ["--allowed-host", "kb.test"]
    env = {**CLUSTER_ENV, "KB_EMBEDDER": "fake", "KB_API_TOKEN": "s3cret"}
    server, url = start_api(args, env, tmp_path / "serve.log", timeout=300)
    token = {"authorization": "Bearer s3cret"}
    try:
        with httpx.Client(timeout=60) as client:
            question = {"query": "hip flexors stretch", "k": 3}
            assert client.post(f"{url}/query", json=question, headers=token).status_code == 200
            named = client.post(f"{url}/query", json=question, headers={**token, "host": "kb.test:8000"})
            assert named.status_code == 200
            foreign = client.post(f"{url}/query", json=question, headers={**token, "host": "evil.example"})
            assert foreign.status_code == 400 and "is not allowed" in foreign.json()["detail"]
            assert client.post(f"{url}/query", json=question).status_code == 401
            big = client.post(f"{url}/query", content=b"x" * (MAX_BODY_BYTES + 1), headers=token)
            assert big.status_code == 413
            surrogate = client.post(
                f"{url}/query",
                content=b'{"query": "\\ud800 hip"}',
                headers={**token, "content-type": "application/json"},
            )
            assert surrogate.status_code == 422, surrogate.text
    finally:
        stop_api(server)
