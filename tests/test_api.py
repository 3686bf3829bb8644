"""The HTTP API's contract (index/serve/app.py): through FastAPI's TestClient, and over real HTTP from uvicorn."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from bench.api_server import start_api, stop_api
from index.__main__ import main
from index.config import Config
from index.embed.fake import FakeEmbedder
from index.serve.app import MAX_BODY_BYTES, LocalBackend, create_app
from index.store.reader import load
from ingest.loaders import load_file
from ingest.pipeline import build
from tests.helpers import wait_for

QUESTIONS = ["spinal fusion bone grafts", "how long do vertebral fractures take to heal?", "hip flexors stretch", "zzz"]


@pytest.fixture
def corpus(tiny_corpus: Path) -> Path:
    """The tiny corpus plus two JSONL files that share a record id."""
    for name, text in (("a.jsonl", "Knee braces help runners."), ("b.jsonl", "Knee surgery needs months of rest.")):
        (tiny_corpus / name).write_text(json.dumps({"_id": "knee", "text": text}), encoding="utf-8")
    return tiny_corpus


@pytest.fixture
def index_dir(corpus: Path, tmp_path: Path) -> Path:
    build(corpus, tmp_path / "idx", FakeEmbedder())
    return tmp_path / "idx"


def client_for(index_dir: Path, token: str | None = None) -> TestClient:
    backend = LocalBackend(Config(index=index_dir, embedder="fake"), poll=0.05)
    return TestClient(create_app(backend, token=token), base_url="http://localhost")  # an allowed Host


def ready(client: TestClient) -> str:
    """The version the API serves, once it serves one."""
    return wait_for(
        lambda: client.get("/readyz").status_code == 200 and client.get("/readyz").json()["version"],
        what="the API to load an index",
    )


def serves(client: TestClient, version: str) -> None:
    """Wait until the API's watcher has switched to `version` (/readyz reports the version it serves)."""
    wait_for(lambda: client.get("/readyz").json().get("version") == version, what=f"the API to serve {version}")


def cli_json(capsys, *args: str) -> list[dict]:
    capsys.readouterr()
    assert main(list(args)) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.fixture(autouse=True)
def fake_model(monkeypatch, thread_counts_restored):
    monkeypatch.setenv("KB_EMBEDDER", "fake")


def test_query_returns_what_the_cli_prints(index_dir, capsys):
    with client_for(index_dir) as client:
        ready(client)
        for k, explain in ((5, False), (1, False), (3, True)):
            expected = cli_json(capsys, "query", *QUESTIONS, "--index", str(index_dir), "-k", str(k), "--json")
            if explain:
                expected = cli_json(
                    capsys, "query", *QUESTIONS, "--index", str(index_dir), "-k", "3", "--json", "--explain"
                )
            for question, want in zip(QUESTIONS, expected):
                response = client.post("/query", json={"query": question, "k": k, "explain": explain})
                assert response.status_code == 200
                assert response.json() == want


def test_info_and_documents(index_dir, corpus, capsys):
    with client_for(index_dir) as client:
        ready(client)
        assert client.get("/info").json() == cli_json(capsys, "info", "--index", str(index_dir), "--json")[0]
        listed = client.get("/documents").json()
        assert {(d["source"], d["doc_id"]) for d in listed} >= {("a.jsonl", "knee"), ("b.jsonl", "knee")}
        [flexors] = load_file(corpus / "hips/flexors.md", "hips/flexors.md")
        text = flexors.text
        assert client.get("/documents/hips/flexors.md").json() == {
            "doc_id": "hips/flexors.md",
            "source": "hips/flexors.md",
            "chars": len(text),
            "text": text,
        }
        # Every hit's offsets index its document's text, fetched the way a citation would be.
        for question in QUESTIONS:
            for hit in client.post("/query", json={"query": question, "k": 5}).json()["hits"]:
                doc = client.get(f"/documents/{hit['doc_id']}", params={"source": hit["source"]}).json()
                assert doc["text"][hit["start"] : hit["end"]] == hit["text"]
                assert doc["text"][hit["answer"]["start"] : hit["answer"]["end"]] == hit["answer"]["text"]
        ambiguous = client.get("/documents/knee")
        assert ambiguous.status_code == 409
        assert (
            ambiguous.json()["detail"] == "document id 'knee' is in several files (a.jsonl, b.jsonl); add ?source=FILE"
        )
        assert client.get("/documents/knee", params={"source": "b.jsonl"}).json()["text"].startswith("Knee surgery")
        missing = client.get("/documents/knee", params={"source": "c.jsonl"})
        assert (missing.status_code, missing.json()) == (
            404,
            {"detail": "no document 'knee' in 'c.jsonl' in the index"},
        )
        assert client.get("/documents/nothing.txt").status_code == 404


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"query": " \t\n"}, "query is empty; ask a question in words"),
        ({"query": "hip", "k": 0}, "k must be between 1 and 100, got 0"),
        ({"query": "hip", "k": 101}, "k must be between 1 and 100, got 101"),
        ({"query": "hip", "k": "many"}, "k: Input should be a valid integer, unable to parse string as an integer"),
        ({"k": 3}, "query is required"),
        ({"query": ["hip"]}, "query: Input should be a valid string"),
        (
            {"query": "hip", "sources": ["fractures.txt", "../etc/passwd"]},
            "unknown source '../etc/passwd': no document of the index comes from it (sources are paths relative to "
            "the corpus, as in a hit's source; GET /documents lists them)",
        ),
    ],
)
def test_bad_requests_are_refused_with_a_clear_422(index_dir, body, detail):
    with client_for(index_dir) as client:
        ready(client)
        response = client.post("/query", json=body)
        assert (response.status_code, response.json()) == (422, {"detail": detail})


def test_sources_limit_the_search_like_the_library(index_dir):
    from index.search.searcher import Searcher

    searcher = Searcher(load(index_dir), FakeEmbedder())
    with client_for(index_dir) as client:
        ready(client)
        for sources in (["hips/flexors.md"], ["copy.txt", "fractures.txt"]):
            response = client.post("/query", json={"query": "spinal fusion", "sources": sources, "k": 3}).json()
            assert response == searcher.search("spinal fusion", 3, frozenset(sources)).to_json()
            assert {hit["source"] for hit in response["hits"]} <= set(sources)


def test_a_body_too_large_is_refused_with_413(index_dir):
    with client_for(index_dir) as client:
        ready(client)
        big = json.dumps({"query": "hip " * (MAX_BODY_BYTES // 4)}).encode()
        response = client.post("/query", content=big, headers={"content-type": "application/json"})
        assert response.status_code == 413 and "request body over 65,536 bytes" in response.json()["detail"]

        def chunks():  # no Content-Length: counted as it arrives
            for start in range(0, len(big), 8192):
                yield big[start : start + 8192]

        response = client.post("/query", content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413
        # Just under the limit is a question like any other, cut at 2,000 characters.
        fits = json.dumps({"query": "hip " * 10_000}).encode()
        assert len(fits) < MAX_BODY_BYTES
        response = client.post("/query", content=fits, headers={"content-type": "application/json"})
        assert response.status_code == 200 and len(response.json()["query"]) <= 2000


def test_a_token_protects_the_data_but_not_the_probes(index_dir):
    with client_for(index_dir, token="s3cret") as client:
        ready(client)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            for method, path in (("post", "/query"), ("get", "/info"), ("get", "/documents/copy.txt")):
                response = client.request(method, path, json={"query": "hip"}, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert response.headers["www-authenticate"] == "Bearer"
        assert (
            client.post("/query", json={"query": "hip"}, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        )
        assert client.get("/healthz").status_code == 200
        assert client.get("/openapi.json").status_code == 200


def test_ready_only_once_an_index_is_loaded(corpus, tmp_path):
    index_dir = tmp_path / "later"
    with client_for(index_dir) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        waiting = wait_for(
            lambda: "no index found" in client.get("/readyz").text and client.get("/readyz"),
            what="/readyz to say no index was found",
        )
        assert waiting.status_code == 503
        assert (
            waiting.json()["detail"]
            == f"no index found in {index_dir}; build one with: python -m ingest --index {index_dir}"
        )
        refused = client.post("/query", json={"query": "hip"})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        build(corpus, index_dir, FakeEmbedder())
        assert ready(client) == load(index_dir).path.name
        assert client.post("/query", json={"query": "hip"}).status_code == 200


def test_a_rebuild_is_picked_up_atomically_and_requests_in_flight_finish_on_their_version(index_dir, corpus):
    question = "what do knee braces help?"
    with client_for(index_dir) as client:
        first = ready(client)
        before = client.post("/query", json={"query": question}).json()
        # A request that is slow inside the search: it started on the first version and must end on it.
        view = client.app.state.backend.view()
        started, release = threading.Event(), threading.Event()
        search = view.searcher.search

        def slow_search(*args):
            started.set()
            release.wait(30)
            return search(*args)

        view.searcher.search = slow_search
        slow: dict = {}
        thread = threading.Thread(target=lambda: slow.update(client.post("/query", json={"query": question}).json()))
        thread.start()
        assert started.wait(10)
        (corpus / "a.jsonl").write_text(
            json.dumps({"_id": "knee", "text": "Knee braces help skiers."}), encoding="utf-8"
        )
        build(corpus, index_dir, FakeEmbedder())
        second = wait_for(
            lambda: client.get("/readyz").json()["version"] != first and client.get("/readyz").json(),
            what="the API to switch to the rebuilt version",
        )
        after = client.post("/query", json={"query": question}).json()
        release.set()
        thread.join(30)
        assert second["version"] == load(index_dir).path.name
        assert slow == before and after != before
        assert any("skiers" in hit["text"] for hit in after["hits"])


def test_queries_while_rebuilding_never_fail_and_never_mix_versions(index_dir, corpus):
    question = "knee braces"
    texts = ["Knee braces help runners.", "Knee braces help skiers.", "Knee braces help climbers."]
    answers: dict[str, str] = {}
    with client_for(index_dir) as client:
        ready(client)
        results: list[tuple[int, dict]] = []
        answered = [0, 0, 0]  # questions each asker has had answered
        stop = threading.Event()

        def ask(asker: int) -> None:
            while not stop.is_set():
                response = client.post("/query", json={"query": question, "k": 5})
                results.append((response.status_code, response.json()))
                answered[asker] += 1

        askers = [threading.Thread(target=ask, args=(i,)) for i in range(len(answered))]
        for thread in askers:
            thread.start()
        for text in texts[1:]:
            (corpus / "a.jsonl").write_text(json.dumps({"_id": "knee", "text": text}), encoding="utf-8")
            build(corpus, index_dir, FakeEmbedder())
            serves(client, load(index_dir).path.name)
        # Two more answers each (the first may have been asked before the switch): every asker's
        # last question is asked of the last version, so the last answer must be that version's.
        marks = list(answered)
        wait_for(
            lambda: all(now >= mark + 2 for now, mark in zip(answered, marks)),
            what="every asker to be answered by the last version",
        )
        stop.set()
        for thread in askers:
            thread.join(30)
    # Each version's own answer, from the library: every response is one of them, whole.
    for text in texts:
        (corpus / "a.jsonl").write_text(json.dumps({"_id": "knee", "text": text}), encoding="utf-8")
        build(corpus, corpus.parent / f"check-{len(answers)}", FakeEmbedder())
        from index.search.searcher import Searcher

        stored = load(corpus.parent / f"check-{len(answers)}")
        answers[text] = json.dumps(Searcher(stored, FakeEmbedder()).search(question, 5).to_json(), sort_keys=True)
    seen = [json.dumps(body, sort_keys=True) for _, body in results]
    assert results and all(status == 200 for status, _ in results)
    assert set(seen) <= set(answers.values())
    assert seen[-1] == answers[texts[-1]]


def test_uvicorn_serves_the_api_over_http(index_dir, tmp_path, capsys):
    server, url = start_api(
        ["--index", str(index_dir), "--workers", "2"],
        {"KB_EMBEDDER": "fake", "KB_API_TOKEN": "s3cret"},
        tmp_path / "serve.log",
        timeout=120,
    )
    try:
        headers = {"Authorization": "Bearer s3cret"}
        expected = cli_json(capsys, "query", *QUESTIONS, "--index", str(index_dir), "--json")
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            for question, want in zip(QUESTIONS, expected):
                assert http.post("/query", json={"query": question}).json() == want
            assert http.post("/query", json={"query": ""}).status_code == 422
            assert http.post("/query", json={"query": "hip"}, headers={"Authorization": "Bearer no"}).status_code == 401
            assert "/query" in http.get("/openapi.json").json()["paths"]
    finally:
        stop_api(server)
    log = (tmp_path / "serve.log").read_text()
    assert f"Uvicorn running on {url}" in log  # localhost by default
    assert log.count("Application startup complete") == 2  # two workers


def test_serve_refuses_a_command_line_that_makes_no_sense(capsys):
    for args, message in (
        (["serve", "--shards", "2"], "--shards and --replicas need --ray"),
        (["serve", "--workers", "0"], "--workers must be at least 1, got 0"),
        (["serve", "--port", "0"], "--port must be between 1 and 65535, got 0"),
        (["serve", "--ray"], "--ray needs --shards N"),
    ):
        with pytest.raises(SystemExit) as exited:
            main(args)
        assert exited.value.code == 2
        assert message in capsys.readouterr().err


def test_mentions_returns_what_the_cli_prints(index_dir, capsys):
    with client_for(index_dir) as client:
        ready(client)
        for phrase, where in (('"spinal fusion"', []), ("vertebrae screws", []), ("knee", ["--where", "type=jsonl"])):
            words = [phrase] if phrase.startswith('"') else phrase.split()  # one shell argument is a phrase
            expected = cli_json(capsys, "mentions", *words, "--json", "--index", str(index_dir), *where)[0]
            params = {"phrase": phrase} | ({"type": "jsonl"} if where else {})
            response = client.get("/mentions", params=params)
            assert response.status_code == 200, response.text
            assert response.json() == expected and expected["total"] > 0


def test_query_where_filters_before_ranking_and_bad_filters_name_the_keys(index_dir, capsys):
    with client_for(index_dir) as client:
        ready(client)
        expected = cli_json(capsys, "query", "knee", "--json", "--where", "type=jsonl", "--index", str(index_dir))[0]
        response = client.post("/query", json={"query": "knee", "where": {"type": ["jsonl"]}})
        assert response.json() == expected
        assert {h["source"] for h in expected["hits"]} == {"a.jsonl", "b.jsonl"}
        bad = client.post("/query", json={"query": "knee", "where": {"kind": "pdf"}})
        assert bad.status_code == 422 and "filters are type, folder, after, before, tag or title" in bad.text
        bad = client.get("/mentions", params={"phrase": "knee", "after": "soon"})
        assert bad.status_code == 422 and "YYYY-MM-DD" in bad.text
        assert client.get("/mentions", params={"phrase": '""'}).status_code == 422
