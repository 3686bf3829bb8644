"""The MCP server, driven by the SDK's own client over stdio and streamable HTTP: its tools answer as the CLI does."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mcp.client.stdio  # noqa: F401 - imported before capsys: its errlog default is the sys.stderr of import time
import pytest

from index.__main__ import main as index_main
from index.embed.fake import FakeEmbedder
from ingest.pipeline import build
from tests.helpers import REPO, wait_for

TOKEN = "test-token-123"
QUESTION = "how long do vertebral fractures take to heal"


@pytest.fixture
def index_dir(tiny_corpus, tmp_path) -> Path:
    build(tiny_corpus, tmp_path / "idx", FakeEmbedder())
    return tmp_path / "idx"


def environment(index_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "KB_EMBEDDER": "fake", "KB_INDEX": str(index_dir), "PYTHONPATH": str(REPO), **extra}


def cli(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert index_main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def expected(capsys, index_dir: Path, monkeypatch) -> dict:
    monkeypatch.setenv("KB_EMBEDDER", "fake")
    at = ("--index", str(index_dir))
    return {
        "search": cli(capsys, "query", QUESTION, "-k", "3", "--json", *at),
        "search_folder": cli(capsys, "query", QUESTION, "--json", "--where", "folder=hips", *at),
        "mentions": cli(capsys, "mentions", "spinal fusion", "--json", *at),
        "mentions_md": cli(capsys, "mentions", "hip", "--json", "--where", "type=md", *at),
    }


async def session(client) -> dict:
    """Every tool and the resource, called once each, as the comparison needs them."""
    names = {tool.name for tool in (await client.list_tools()).tools}
    results = {
        "search": await client.call_tool("search", {"question": QUESTION, "k": 3}),
        "search_folder": await client.call_tool("search", {"question": QUESTION, "where": {"folder": "hips"}}),
        "mentions": await client.call_tool("mentions", {"phrase": '"spinal fusion"'}),
        "mentions_md": await client.call_tool("mentions", {"phrase": "hip", "where": {"type": ["md"]}}),
        "slice": await client.call_tool("get_document", {"doc_id": "fractures.txt", "start": 0, "end": 19}),
        "bad_where": await client.call_tool("search", {"question": QUESTION, "where": {"colour": "red"}}),
        "bad_slice": await client.call_tool("get_document", {"doc_id": "fractures.txt", "start": 5, "end": 10**6}),
    }
    documents = await client.read_resource("kb://documents")
    return {"names": names, "results": results, "documents": json.loads(documents.contents[0].text)}


def check(outcome: dict, want: dict, tiny_corpus: Path) -> None:
    assert outcome["names"] == {"search", "mentions", "get_document"}
    results = outcome["results"]
    for name in ("search", "search_folder", "mentions", "mentions_md"):
        assert not results[name].is_error, results[name].content
        assert results[name].structured_content == want[name], name
    assert {h["source"] for h in want["search_folder"]["hits"]} == {"hips/flexors.md"}
    text = (tiny_corpus / "fractures.txt").read_text(encoding="utf-8")
    assert results["slice"].structured_content["text"] == text[:19] == "Vertebral fractures"
    assert results["bad_where"].is_error and "filters are type, folder" in results["bad_where"].content[0].text
    assert results["bad_slice"].is_error and "0 <= start <= end <=" in results["bad_slice"].content[0].text
    assert {d["source"] for d in outcome["documents"]} == {"fractures.txt", "hips/flexors.md", "copy.txt"}


def test_stdio_tools_answer_as_the_cli(index_dir, tiny_corpus, capsys, monkeypatch, thread_counts_restored):
    from mcp import Client, StdioServerParameters

    want = expected(capsys, index_dir, monkeypatch)
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "index", "mcp", "--index", str(index_dir)], env=environment(index_dir)
    )

    async def run() -> dict:
        async with Client(params) as client:
            return await session(client)

    check(asyncio.run(run()), want, tiny_corpus)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_http_tools_answer_as_the_cli_behind_the_token(
    index_dir, tiny_corpus, capsys, monkeypatch, thread_counts_restored
):
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    want = expected(capsys, index_dir, monkeypatch)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "index", "mcp", "--http", "--port", str(port), "--index", str(index_dir)],
        env=environment(index_dir, KB_API_TOKEN=TOKEN),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: listening(port), what="the MCP server listening", timeout=60)
        url = f"http://127.0.0.1:{port}/mcp"
        refused = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert refused.status_code == 401 and "bearer token" in refused.text
        wrong = httpx.post(url, json={}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401

        async def run() -> dict:
            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                async with Client(streamable_http_client(url, http_client=http)) as client:
                    return await session(client)

        check(asyncio.run(run()), want, tiny_corpus)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_published_rebuild_takes_over_new_calls(index_dir, tiny_corpus):
    from mcp import Client

    from index.config import Config
    from index.serve.app import LocalBackend
    from index.serve.mcp import create_server

    server = create_server(LocalBackend(Config(index=index_dir, embedder="fake"), poll=0.05))

    async def run() -> tuple[int, int]:
        async with Client(server) as client:
            before = (await client.call_tool("mentions", {"phrase": "sciatica"})).structured_content["total"]
            (tiny_corpus / "new.txt").write_text("Sciatica is pain along the sciatic nerve.", encoding="utf-8")
            await asyncio.to_thread(build, tiny_corpus, index_dir, FakeEmbedder())
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                found = await client.call_tool("mentions", {"phrase": "sciatica"})
                if found.structured_content["total"]:
                    return before, found.structured_content["total"]
                await asyncio.sleep(0.05)
            raise AssertionError("the rebuild was not loaded within 30 s")

    assert asyncio.run(run()) == (0, 1)
