"""The MCP server: the knowledge base as tools for agents (the official MCP Python SDK), over stdio or HTTP.

    python -m index mcp [--index DIR]                  stdio: a client starts it as a subprocess
    python -m index mcp --http [--port 8765]           streamable HTTP on 127.0.0.1, at /mcp

Tools (read-only: nothing here changes the index or the corpus):

- `search(question, k, where)`: the verdict, the quoted answer sentences and
  every hit with its citation and offsets, exactly what `python -m index query
  --json` prints (with `--where` as `where`);
- `mentions(phrase, where)`: every place a phrase occurs, as `python -m index
  mentions --json` prints it;
- `get_document(doc_id, start, end, source)`: a slice of a document's
  extracted text, the text every `start` and `end` index;

and the resource `kb://documents`, every document with its file, length,
title and tags (the list GET /documents gives, with the metadata filters use).

The index is loaded and watched as the HTTP API does (`index.serve.app.LocalBackend`,
an `IndexWatcher`): a rebuild published while the server runs takes over new
calls, calls in flight finish on their version. Over HTTP the server listens
on 127.0.0.1 only, and when `KB_API_TOKEN` is set every request needs
`Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
import json
import time
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from index.config import Config
from index.search.filters import FilterError, Where
from index.search.mentions import Phrase
from index.search.query import clean_query
from index.serve.app import LocalBackend, LocalView
from index.serve.schemas import MAX_K

DOCUMENTS_URI = "kb://documents"
HOST = "127.0.0.1"
# How long a call waits for the model and the index to load (a client may call as soon as it starts us).
READY_SECONDS = 120.0

WhereArgument = Annotated[
    dict[str, str | list[str]] | None,
    Field(
        description="Only documents that match, applied before ranking: type (pdf, html, md, docx, txt, jsonl), "
        "folder, after and before (YYYY-MM-DD, the file's date), tag, title; each a value or a list of "
        'alternatives. Example: {"type": "pdf", "after": "2026-01-01"}.'
    ),
]


class ToolRefused(ToolError):
    """A call that makes no sense; the message, sent back as the tool's error, says why and what to send."""


def create_server(backend: LocalBackend) -> MCPServer:
    """The MCP server over `backend` (with the tools and the resource), which it starts and stops with each run."""

    @asynccontextmanager
    async def lifespan(_server):
        backend.start()
        try:
            yield {}
        finally:
            backend.stop()

    server = MCPServer(
        name="knowledge-base",
        instructions="Search a folder of documents: quoted, cited answers (search), every mention of a phrase "
        "(mentions) and the documents' text (get_document). Citations' start and end index the text "
        "get_document returns.",
        lifespan=lifespan,
    )

    @server.tool()
    async def search(question: str, k: int = 5, where: WhereArgument = None) -> dict[str, Any]:
        """Answer a question from the documents: the verdict (answered, unsure, not_answered), and the k best
        passages, each with its source, offsets, answer sentence and confidence; `suggestion` is the
        question with misspelt words corrected, when a word looks misspelt. The same JSON as
        `python -m index query --json`."""
        if not clean_query(question):
            raise ToolRefused("question is empty; ask a question in words")
        if not 1 <= k <= MAX_K:
            raise ToolRefused(f"k must be between 1 and {MAX_K}, got {k}")
        filters = _where(where)
        view = await _view(backend)
        answer = await anyio.to_thread.run_sync(lambda: _filtered(view.searcher.search, question, k, None, filters))
        return answer.to_json()

    @server.tool()
    async def mentions(phrase: str, where: WhereArgument = None) -> dict[str, Any]:
        """Every place a word or phrase occurs in the documents, grouped by document with counts, each with
        its start, end, line and page: words must all occur within one passage, "an exact phrase" goes in
        double quotes (case and accents ignored, whole words). The same JSON as
        `python -m index mentions --json`."""
        try:
            parsed = Phrase.parse(clean_query(phrase))
        except ValueError as exc:
            raise ToolRefused(str(exc)) from None
        filters = _where(where)
        view = await _view(backend)
        found = await anyio.to_thread.run_sync(lambda: _filtered(view.searcher.mentions, parsed, filters))
        return found.to_json()

    @server.tool()
    async def get_document(
        doc_id: str, start: int = 0, end: int | None = None, source: str | None = None
    ) -> dict[str, Any]:
        """A slice of a document's extracted text: characters start to end (default: all of it), the text a
        hit's or a mention's start and end index. `doc_id` is a hit's doc_id; `source` (a hit's source)
        says which file is meant when a record id repeats in several."""
        view = await _view(backend)
        row = _document_row(view, doc_id, source)
        doc = view.documents[row]
        end = doc.chars if end is None else end
        if not 0 <= start <= end <= doc.chars:
            raise ToolRefused(f"start and end must satisfy 0 <= start <= end <= {doc.chars}, got {start} and {end}")
        text = view.text(row)
        return {"doc_id": doc.doc_id, "source": doc.source, "chars": doc.chars, "start": start, "end": end,
                "text": text[start:end]}  # fmt: skip

    @server.resource(DOCUMENTS_URI, name="documents", mime_type="application/json")
    async def documents() -> str:
        """Every document of the knowledge base: its id, file, length in characters, passages, title and tags."""
        view = await _view(backend)
        return json.dumps(document_list(view), ensure_ascii=False)

    return server


def document_list(view: LocalView) -> list[dict]:
    """What the `kb://documents` resource holds."""
    return [
        {
            "doc_id": d.doc_id,
            "source": d.source,
            "chars": d.chars,
            "passages": d.passages,
            "title": d.title,
            "tags": list(d.tags),
        }  # fmt: skip
        for d in view.documents
    ]


async def _view(backend: LocalBackend) -> LocalView:
    """The current version, waiting while the model and the index load; refused with the reason otherwise."""
    deadline = time.monotonic() + READY_SECONDS
    while (view := backend.view()) is None:
        problem = backend.not_ready()
        if not problem.startswith("loading") or time.monotonic() > deadline:
            raise ToolRefused(f"not ready: {problem}")
        await anyio.sleep(0.05)
    return view


def _where(fields: dict | None) -> Where | None:
    try:
        return Where.from_fields(fields or {}) or None
    except FilterError as exc:
        raise ToolRefused(str(exc)) from None


def _filtered(call, *args):
    """`call(*args)`; a filter the index cannot apply (by title on an index without titles) is a refusal."""
    try:
        return call(*args)
    except FilterError as exc:
        raise ToolRefused(str(exc)) from None


def _document_row(view: LocalView, doc_id: str, source: str | None) -> int:
    rows = [row for row in view.rows_of(doc_id) if source is None or view.documents[row].source == source]
    if not rows:
        where = f" in {source!r}" if source is not None else ""
        raise ToolRefused(f"no document {doc_id!r}{where}; the resource {DOCUMENTS_URI} lists them")
    if len(rows) > 1:
        names = ", ".join(sorted(view.documents[row].source for row in rows))
        raise ToolRefused(f"document id {doc_id!r} is in several files ({names}); give source as well")
    return rows[0]


class BearerToken:
    """ASGI middleware: every HTTP request needs `Authorization: Bearer <token>` (401 otherwise)."""

    def __init__(self, app, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers", ())).get(b"authorization", b"")
            scheme, _, credentials = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(credentials.strip(), self.token):
                body = b'{"detail": "missing or wrong bearer token; send Authorization: Bearer <KB_API_TOKEN>"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app(server: MCPServer, token: str | None):
    """The server's streamable HTTP app (at /mcp), behind the bearer token when there is one."""
    app = server.streamable_http_app(host=HOST)
    return BearerToken(app, token) if token else app


def run(config: Config, http: bool = False, port: int = 8765, token: str | None = None) -> None:
    """Serve until interrupted: over stdio, or over streamable HTTP on 127.0.0.1:`port`."""
    server = create_server(LocalBackend(config))
    if not http:
        server.run("stdio")
        return
    import uvicorn

    uvicorn.run(http_app(server, token), host=HOST, port=port, log_level="warning")
