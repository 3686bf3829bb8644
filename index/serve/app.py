"""The HTTP API: questions, the index's description and documents' texts for programs (FastAPI).

    POST /query              {"query", "k", "sources", "explain", "where"} -> what `python -m index query --json` prints
    POST /feedback           {"query", "vote": "up"|"down", "passage", "answer_in"}: a vote (index.serve.feedback)
    GET  /mentions           ?phrase=&type=&folder=&after=&before=&tag=&title= -> `python -m index mentions --json`
    GET  /info               what `python -m index info --json` prints
    GET  /documents          every document: id, source file, characters, passages
    GET  /documents/{id}     a document's extracted text (the text citations' offsets index);
                             ?source= names its file when the id alone is ambiguous
    GET  /healthz            the process answers
    GET  /readyz             the model and an index are loaded (503 until then)
    GET  /docs, /openapi.json  the OpenAPI description

`create_app` builds the app over a `Backend`, which answers from one index
version at a time: `LocalBackend` holds a `Searcher` in this process (`python
-m index serve`, under uvicorn), and `index.serve.ray_serve` routes each question
over shards on Ray Serve (`python -m index serve --ray`) behind the same app.
Either way a request takes the backend's current `View` once and is answered
from it alone, so a rebuild published meanwhile never mixes into it: the
backend watches the index folder's CURRENT pointer, loads the new version
beside the old one, and switches new requests to it in one assignment, while
requests in flight finish on the version they started with.

Requests are checked at the edge, each refusal a 4xx with one sentence in
`detail`: an empty question, `k` outside 1 to `MAX_K`, a source the index
does not hold, a body over `MAX_BODY_BYTES`. When `KB_API_TOKEN` is set, the
data endpoints (/query, /info, /documents) need `Authorization: Bearer
<token>`; /mentions too; the health probes and the OpenAPI description stay open. Every
request must name an allowed host in its Host header (`DEFAULT_ALLOWED_HOSTS`,
or `--allowed-host` / `KB_ALLOWED_HOSTS`), else 400: a web page that rebinds
its own name to 127.0.0.1 cannot read the documents through a browser on this
machine. No CORS headers are sent, so other sites' pages cannot read answers either.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from index.config import Config, one_thread_per_question
from index.embed.batching import BatchingEmbedder
from index.gaps import log_question
from index.records import DocumentInfo
from index.search.filters import FilterError, Where
from index.search.mentions import Phrase
from index.search.query import MAX_QUERY_CHARS, clean_query, not_text
from index.search.searcher import Searcher
from index.search.settings import SearchSettings
from index.serve.feedback import add_feedback_route
from index.serve.schemas import MAX_K, DocumentResponse, MentionsResponse, Problem, QueryRequest, QueryResponse
from index.serve.watcher import Backend, DocumentLookup, IndexWatcher, View
from index.store.reader import StoredIndex, info_json, load

log = logging.getLogger("kb.api")

# A question is searched up to 2,000 characters; 64 KiB holds that many times over
# in any encoding, with a long list of sources, and keeps a runaway client cheap.
MAX_BODY_BYTES = 64 * 1024
TOKEN_VARIABLE = "KB_API_TOKEN"
HOSTS_VARIABLE = "KB_ALLOWED_HOSTS"
# The names of this machine a local browser uses; "*" in the list allows any.
DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_BEARER = HTTPBearer(auto_error=False, description=f"The token in ${TOKEN_VARIABLE}, when the server sets one.")


@dataclass
class LocalView(DocumentLookup):
    """A loaded index version and the searcher over it."""

    version: str
    searcher: Searcher

    @property
    def stored(self) -> StoredIndex:
        return self.searcher.stored

    @property
    def documents(self) -> list[DocumentInfo]:
        return self.stored.documents

    async def query(
        self, question: str, k: int, sources: frozenset[str] | None, explain: bool, where: Where | None = None
    ) -> dict:
        answer = await run_in_threadpool(self.searcher.search, question, k, sources, where)
        return answer.to_json(explain)

    async def mentions(self, phrase: Phrase, where: Where | None) -> dict:
        found = await run_in_threadpool(self.searcher.mentions, phrase, where)
        return found.to_json()

    def info(self) -> dict:
        return info_json(self.stored)

    def text(self, row: int) -> str:
        return self.stored.texts.text(row)


class LocalBackend(IndexWatcher):
    """One index loaded in this process, reloaded when a rebuild is published (checked every `poll` seconds)."""

    def __init__(self, config: Config, settings: SearchSettings = SearchSettings(), poll: float = 1.0) -> None:
        super().__init__(config, settings, poll)

    def _open_embedder(self):
        """The model, with questions in flight together sharing its passes (`index.embed.batching`)."""
        embedder = super()._open_embedder()
        if self.config.batch_questions <= 1:  # KB_BATCH_QUESTIONS=1: each question its own pass
            return embedder
        return BatchingEmbedder(embedder, self.config.batch_questions)

    def _load(self, version: Path, embedder) -> LocalView:
        stored = load(self.config.index, model=embedder.name)
        log.info("serving index version %s", stored.path.name)
        return LocalView(
            stored.path.name, Searcher(stored, embedder, self.settings, answers_kept=self.config.answers_kept)
        )

    def _missing(self) -> str:
        return f"no index found in {self.config.index}; build one with: python -m ingest --index {self.config.index}"


def create_app(
    backend: Backend, token: str | None = None, allowed_hosts: Sequence[str] = DEFAULT_ALLOWED_HOSTS
) -> FastAPI:
    """The API over `backend`.

    Args:
        backend: Where answers come from; started and stopped with the app.
        token: When given, /query, /info and /documents need `Authorization: Bearer <token>`.
        allowed_hosts: The names a request's Host header may give (without the port); "*" allows any.
    """
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        backend.start()
        try:
            yield
        finally:
            backend.stop()

    app = FastAPI(
        title="Knowledge base",
        summary="Ask questions of a folder of documents; get quoted, cited passages back.",
        version="1",
        lifespan=lifespan,
    )
    app.state.backend = backend
    # Questions are logged beside the backend's index folder, where `python -m index gaps` reads them.
    questions_log = getattr(getattr(backend, "config", None), "index", None)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(HostCheck, allowed=tuple(allowed_hosts))  # added last: runs first

    def authorized(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> None:
        _check_token(credentials, token)

    def current() -> View:
        return _current_view(backend)

    errors = {
        400: {"model": Problem, "description": "The Host header names no allowed host."},
        401: {"model": Problem, "description": "No or a wrong bearer token."},
        413: {"model": Problem, "description": f"The body is over {MAX_BODY_BYTES:,} bytes."},
        422: {"model": Problem, "description": "The request makes no sense (the detail says why)."},
        503: {"model": Problem, "description": "No index is loaded yet (the detail says why)."},
    }

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(exc)}, status_code=422)

    @app.post("/query", response_model=QueryResponse, responses=errors, dependencies=[Depends(authorized)])
    async def query(request: QueryRequest) -> JSONResponse:
        """Answer one question: ranked passages, each with its answer span and confidence, and the verdict."""
        _check_question(request)
        where = _filter(request.where)
        view = current()
        sources = _known_sources(request.sources, view)
        # The JSON as built, not re-validated through the model: byte for byte what the CLI prints, parsed.
        answer = await _ask(view, request, sources, where)
        await run_in_threadpool(_log_asked, questions_log, answer, view.version)
        return JSONResponse(answer)

    add_feedback_route(app, current, authorized, questions_log, errors)
    _add_mentions(app, current, [Depends(authorized)], errors)

    @app.get("/info", responses=errors, dependencies=[Depends(authorized)])
    def info() -> dict:
        """What the index holds: `python -m index info --json`."""
        return current().info()

    @app.get("/documents", responses=errors, dependencies=[Depends(authorized)])
    def documents() -> list[dict]:
        """Every document: its id, its file (`source`), its length in characters and its passages."""
        return [
            {"doc_id": d.doc_id, "source": d.source, "chars": d.chars, "passages": d.passages}
            for d in current().documents
        ]

    @app.get(
        "/documents/{doc_id:path}",
        response_model=DocumentResponse,
        responses={**errors, 404: {"model": Problem}, 409: {"model": Problem}},
        dependencies=[Depends(authorized)],
    )
    def document(doc_id: str, source: str | None = None) -> dict:
        """A document's extracted text, which a hit's `start` and `end` index.

        `doc_id` is a hit's `doc_id`: a file's path for files, a record's id for
        JSONL records. A record id can repeat in another file: then `source`
        (the hit's `source`) says which one is meant.
        """
        view = current()
        row = _document_row(view, doc_id, source)
        d = view.documents[row]
        return {"doc_id": d.doc_id, "source": d.source, "chars": d.chars, "text": view.text(row)}

    @app.get("/healthz")
    def healthz() -> dict:
        """The process answers (whether or not an index is loaded)."""
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"model": Problem}})
    def readyz() -> JSONResponse:
        """Ready once the model and an index version are loaded; 503 with the reason until then.

        When a newer version could not be loaded, the one in use keeps answering (still ready) and
        `failed` names the version that failed and why.
        """
        return _readiness(backend)

    return app


def _log_asked(index_dir: Path | None, answer: dict, version: str) -> None:
    """The knowledge-gaps log (`index.gaps`), beside the index folder; off with KB_LOG_QUESTIONS=0."""
    if index_dir is not None:
        log_question(index_dir, answer, version)


def _add_mentions(app: FastAPI, current: Callable[[], View], dependencies: list, errors: dict) -> None:
    """GET /mentions: every mention of a phrase, as `python -m index mentions --json` prints them."""

    @app.get("/mentions", response_model=MentionsResponse, responses=errors, dependencies=dependencies)
    async def mentions(
        phrase: str,
        type: Annotated[list[str] | None, Query()] = None,  # noqa: A002 - the filter's name, as in --where
        folder: Annotated[list[str] | None, Query()] = None,
        after: str | None = None,
        before: str | None = None,
        tag: Annotated[list[str] | None, Query()] = None,
        title: Annotated[list[str] | None, Query()] = None,
    ) -> JSONResponse:
        """Every place a word or phrase occurs, grouped by document with counts; each place a citation.

        `phrase`: words that must all occur within one passage, or "an exact phrase" in double quotes
        (case and accents ignored, whole words). The filters are those of POST /query's `where`.
        """
        parsed = _phrase(phrase)
        fields = {"type": type, "folder": folder, "after": after, "before": before, "tag": tag, "title": title}
        where = _filter(fields)
        view = _local(current(), "every mention is")
        return JSONResponse(await _filtered(view.mentions(parsed, where)))


def _readiness(backend: Backend) -> JSONResponse:
    """What /readyz says: the version answering and any newer one that failed to load, or 503 and why."""
    view = backend.view()
    if view is None:
        return JSONResponse({"ready": False, "detail": backend.not_ready()}, status_code=503)
    body = {"ready": True, "version": view.version}
    failed = backend.failed()
    if failed is not None:
        body["failed"] = {"version": failed[0], "detail": failed[1]}
    return JSONResponse(body)


def _current_view(backend: Backend) -> View:
    """The backend's current version; 503 (try again in a second) while none is loaded."""
    view = backend.view()
    if view is None:
        raise HTTPException(503, f"not ready: {backend.not_ready()}", headers={"Retry-After": "1"})
    return view


def _filter(fields: dict | None) -> Where | None:
    """The filter of a request's fields (None when nothing filters); a bad one is refused (422), naming the keys."""
    try:
        return Where.from_fields(fields or {}) or None
    except FilterError as exc:
        raise HTTPException(422, str(exc)) from None


async def _ask(view: View, request: QueryRequest, sources: frozenset[str] | None, where: Where | None) -> dict:
    """The answer's JSON, from the view as it is asked (filters only where they are offered)."""
    if where is None:
        return await view.query(request.query, request.k, sources, request.explain)
    view = _local(view, "filters are")
    return await _filtered(view.query(request.query, request.k, sources, request.explain, where))


def _phrase(text: str) -> Phrase:
    """The phrase of a request; an empty one is refused (422)."""
    try:
        return Phrase.parse(clean_query(text))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


def _local(view: View, what: str) -> LocalView:
    """The view, when it is served from this process; 501 on Ray Serve, which does not offer `what` yet."""
    if not isinstance(view, LocalView):
        raise HTTPException(501, f"{what} not available when serving on Ray; serve without --ray")
    return view


async def _filtered(answer: Awaitable[dict]) -> dict:
    """The awaited answer; a filter the index cannot apply (by title on an index without titles) is refused (422)."""
    try:
        return await answer
    except FilterError as exc:
        raise HTTPException(422, str(exc)) from None


def _check_token(credentials: HTTPAuthorizationCredentials | None, token: str | None) -> None:
    """Refuse (401) a request without the server's token, when it has one."""
    if token is None:
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            401,
            "missing or wrong bearer token; send the header Authorization: Bearer <the server's KB_API_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _check_question(request: QueryRequest) -> None:
    """Refuse (422) a question that is not text or is empty, or a `k` out of range."""
    reason = not_text(request.query)
    if reason is not None:
        raise HTTPException(422, f"query is not valid text: {reason}")
    if not clean_query(request.query):
        raise HTTPException(422, "query is empty; ask a question in words")
    if not 1 <= request.k <= MAX_K:
        raise HTTPException(422, f"k must be between 1 and {MAX_K}, got {request.k}")


def _known_sources(sources: list[str] | None, view: View) -> frozenset[str] | None:
    """The sources a question is limited to; a source the index does not hold is refused (422)."""
    if sources is None:
        return None
    unknown = sorted(set(sources) - view.sources)
    if unknown:
        raise HTTPException(
            422,
            f"unknown source {unknown[0]!r}: no document of the index comes from it "
            "(sources are paths relative to the corpus, as in a hit's source; GET /documents lists them)",
        )
    return frozenset(sources)


def _document_row(view: View, doc_id: str, source: str | None) -> int:
    """The row of the one document with this id (and source); 404 when none, 409 when several."""
    rows = [row for row in view.rows_of(doc_id) if source is None or view.documents[row].source == source]
    if not rows:
        where = f" in {source!r}" if source is not None else ""
        raise HTTPException(404, f"no document {doc_id!r}{where} in the index")
    if len(rows) > 1:
        names = ", ".join(sorted(view.documents[row].source for row in rows))
        raise HTTPException(409, f"document id {doc_id!r} is in several files ({names}); add ?source=FILE")
    return rows[0]


def _validation_message(exc: RequestValidationError) -> str:
    """FastAPI's validation errors as one sentence naming the field and what it must be."""
    messages = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        if error.get("type") == "missing":
            messages.append(f"{field} is required")
        elif error.get("type") == "json_invalid":
            messages.append("the body is not valid JSON")
        else:
            messages.append(f"{field}: {error.get('msg', 'invalid')}")
    return "; ".join(messages) or "invalid request"


class BodyLimit:
    """Refuses a request body over `limit` bytes with 413, whether or not it declares its length."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive: Callable[[], Awaitable[dict]], send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        # Read the whole body first (it is small by definition), so an oversized one is refused
        # before any route sees it; FastAPI would turn an error raised mid-read into a 400.
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def buffered_receive() -> dict:
            return next(replay, None) or await receive()

        await self.app(scope, buffered_receive, send)

    async def _refuse(self, send) -> None:
        body = (
            f'{{"detail": "request body over {self.limit:,} bytes; a question is searched up to '
            f'{MAX_QUERY_CHARS:,} characters, so send less"}}'
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def allowed_hosts_from(value: str | None) -> tuple[str, ...]:
    """The allowed hosts a `KB_ALLOWED_HOSTS` value names (comma-separated), or the default when it is empty."""
    hosts = tuple(h.strip().lower() for h in (value or "").split(",") if h.strip())
    return hosts or DEFAULT_ALLOWED_HOSTS


class HostCheck:
    """Refuses (400) a request whose Host header names no allowed host: the defence against DNS rebinding."""

    def __init__(self, app, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = frozenset(h.lower() for h in allowed)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket") or "*" in self.allowed:
            await self.app(scope, receive, send)
            return
        host = dict(scope.get("headers", ())).get(b"host", b"").decode("latin-1")
        name = _host_name(host)
        if name in self.allowed:
            await self.app(scope, receive, send)
            return
        shown = host if len(host) <= 100 else host[:100] + "..."
        detail = (
            f"Host {shown!r} is not allowed; this server answers to {', '.join(sorted(self.allowed))} "
            f"(add a name with --allowed-host NAME or {HOSTS_VARIABLE}=NAME,...)"
        )
        response = JSONResponse({"detail": detail}, status_code=400)
        await response(scope, receive, send)


def _host_name(host: str) -> str:
    """A Host header's name without its port, lower-cased: "[::1]:8000" -> "[::1]", "LocalHost:80" -> "localhost"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def one_thread_per_pass() -> None:
    """Model passes on one thread in this server process (unless `OMP_NUM_THREADS` says otherwise).

    While one thread embeds a batch of questions, the other core searches and
    answers the questions embedded before. A second thread per pass bought a
    quiet server 2% more questions/s for 38% more CPU, and cost a busy one a
    third of its questions (bench/RESULTS.md, "Speed at the limit: serving
    that batches"). `index.embed.onnx_model.OnnxRunner` reads it when the
    model loads; Ray sets the same in the Ray Serve replicas.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def app_from_environment() -> FastAPI:
    """The app `python -m index serve` runs in each uvicorn worker: folders and model from `KB_*` variables."""
    one_thread_per_question()
    one_thread_per_pass()
    return create_app(
        LocalBackend(Config.resolve()),
        token=os.environ.get(TOKEN_VARIABLE) or None,
        allowed_hosts=allowed_hosts_from(os.environ.get(HOSTS_VARIABLE)),
    )
