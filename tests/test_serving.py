"""The API on Ray Serve (`python -m index serve --ray --shards 4 --replicas 2`, index/serve/ray_serve.py), over real HTTP.

One local Ray instance, started by the command itself, serves the bundled
corpus with the bundled model for the whole module: every answer must be the
single-process searcher's, to the bit, while a shard replica is killed and
while a rebuild is published.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from pathlib import Path

import httpx
import pytest

from bench.api_server import session_processes, start_api, stop_api
from index.embed.registry import BundledModel
from index.search.searcher import Searcher
from index.store.reader import info_json, load
from ingest.pipeline import build
from tests.helpers import REPO, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.model]

SHARDS, REPLICAS = 4, 2
NEW_DOCUMENT = "Kneecap pain after running, called runner's knee, eases with quadriceps strengthening."
NEW_QUESTION = "what helps runner's knee?"


def bundled_questions() -> list[str]:
    return [
        json.loads(line)["query"]
        for name in ("questions.jsonl", "questions-everyday.jsonl")
        for line in (REPO / "corpus" / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


@pytest.fixture(scope="module")
def model() -> BundledModel:
    return BundledModel()


@pytest.fixture(scope="module")
def served(tmp_path_factory, model):
    """The bundled corpus built with 4 shards, served on a local Ray instance by the CLI: (url, corpus, index)."""
    root = tmp_path_factory.mktemp("serving")
    corpus = shutil.copytree(REPO / "corpus", root / "corpus")
    index_dir = root / "idx"
    build(corpus, index_dir, model, shards=SHARDS)
    args = ["--ray", "--shards", str(SHARDS), "--replicas", str(REPLICAS), "--index", str(index_dir)]
    server, url = start_api(args, {"RAY_USAGE_STATS_ENABLED": "0"}, root / "serve.log", timeout=300)
    try:
        yield url, corpus, index_dir, server
    finally:
        stop_api(server)
    # A killed process takes a moment to go: judge once it has had the time, not at once.
    try:
        wait_for(lambda: not session_processes(server), timeout=30, interval=0.2, what="the server's processes to go")
    except AssertionError:
        raise AssertionError(f"Ray processes outlived the server: {session_processes(server)}") from None


def expected(index_dir: Path, model: BundledModel, questions: list[str], k: int = 5) -> dict[str, dict]:
    searcher = Searcher(load(index_dir), model)
    # Sharded serving suggests no corrected question ("did you mean" is one-process only): compared without.
    return {q: json.loads(json.dumps(searcher.search(q, k, suggest=False).to_json(False))) for q in questions}


def ask(client: httpx.Client, url: str, question: str, k: int = 5, **extra) -> httpx.Response:
    return client.post(f"{url}/query", json={"query": question, "k": k, **extra}, timeout=120)


class Askers:
    """Clients asking questions in a loop until stopped, recording every (question, status, body)."""

    def __init__(self, url: str, questions: list[str], clients: int = 4) -> None:
        self.url, self.questions = url, questions
        self.results: list[tuple[str, int, dict]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(clients)]

    def __enter__(self) -> Askers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(180)

    def _run(self, offset: int) -> None:
        with httpx.Client() as client:
            i = offset
            while not self._stop.is_set():
                question = self.questions[i % len(self.questions)]
                try:
                    response = ask(client, self.url, question)
                    self.results.append((question, response.status_code, response.json()))
                except httpx.HTTPError as exc:
                    self.results.append((question, 0, {"detail": repr(exc)}))
                i += 1

    def wait_for_answers(self, count: int, timeout: float = 300) -> None:
        wait_for(lambda: len(self.results) >= count, timeout=timeout, interval=0.1, what=f"{count} answers")


def replicas(server, shard: str) -> set[int]:
    return {pid for pid, title in session_processes(server).items() if f"ServeReplica:kb:{shard}" in title}


def test_sharded_service_answers_exactly_as_one_process(served, model):
    url, _, index_dir, server = served
    questions = bundled_questions()
    assert len(questions) > 20
    wanted = expected(index_dir, model, questions, k=10)
    with httpx.Client() as client:
        for question in questions:
            response = ask(client, url, question, k=10)
            assert response.status_code == 200, response.text
            # Every passage, rank, score (the same float64), answer span and confidence.
            assert response.json() == wanted[question], question
        stored = load(index_dir)
        assert client.get(f"{url}/info").json() == json.loads(json.dumps(info_json(stored)))
        doc = stored.documents[0]
        text = client.get(f"{url}/documents/{doc.doc_id}").json()["text"]
        hit = wanted[questions[0]]["hits"][0]
        assert text[hit["start"] : hit["end"]] == hit["text"]
        assert ask(client, url, questions[0], sources=["nowhere.txt"]).status_code == 422
    assert all(len(replicas(server, f"shard-{s:03d}")) == REPLICAS for s in range(SHARDS))


def test_a_killed_shard_replica_loses_no_question_and_is_restarted(served, model):
    url, _, index_dir, server = served
    questions = bundled_questions()
    wanted = expected(index_dir, model, questions)
    before = replicas(server, "shard-001")
    assert len(before) == REPLICAS
    victim = min(before)
    with Askers(url, questions) as askers:
        askers.wait_for_answers(20)
        os.kill(victim, signal.SIGKILL)
        killed_at = len(askers.results)
        restarted = wait_for(
            lambda: len(replicas(server, "shard-001") - {victim}) == REPLICAS,
            timeout=180,
            interval=0.5,
            what="Ray Serve to restart the killed replica",
        )
        askers.wait_for_answers(killed_at + 40)
    assert restarted and victim not in replicas(server, "shard-001")
    failed = [(q, status, body) for q, status, body in askers.results if status != 200]
    assert not failed, failed[:3]
    wrong = [q for q, _, body in askers.results if body != wanted[q]]
    assert not wrong, wrong[:3]


def test_a_rebuild_published_while_questions_flow_fails_none_and_mixes_no_versions(served, model):
    url, corpus, index_dir, _ = served
    questions = [NEW_QUESTION] + bundled_questions()
    old = expected(index_dir, model, questions)
    old_version = load(index_dir).path.name
    with Askers(url, questions) as askers:
        askers.wait_for_answers(20)
        (corpus / "knees.txt").write_text(NEW_DOCUMENT, encoding="utf-8")
        report = build(corpus, index_dir, model)  # keeps the 4 shards being served
        new_version = load(index_dir).path.name
        with httpx.Client() as client:
            wait_for(
                lambda: client.get(f"{url}/readyz").json().get("version") == new_version,
                timeout=180,
                interval=0.5,
                what=f"the service to serve {new_version}",
            )
        switched_at = len(askers.results)
        askers.wait_for_answers(switched_at + 40)
    assert report.published and new_version != old_version and load(index_dir).manifest.shards == SHARDS
    new = expected(index_dir, model, questions)
    assert new[NEW_QUESTION] != old[NEW_QUESTION]
    assert new[NEW_QUESTION]["hits"][0]["source"] == "knees.txt"
    failed = [(q, status, body) for q, status, body in askers.results if status != 200]
    assert not failed, failed[:3]
    mixed = [q for q, _, body in askers.results if body not in (old[q], new[q])]
    assert not mixed, mixed[:3]
    with httpx.Client() as client:
        assert ask(client, url, NEW_QUESTION).json() == new[NEW_QUESTION]
