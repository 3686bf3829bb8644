"""The HTTP API on Ray Serve: a router over N shard deployments of R replicas each.

`python -m index serve --ray [ADDRESS] --shards N --replicas R` deploys:

- `Shard` (N deployments, `shard-000` ...), R replicas each: a replica loads
  its shard of a published version (`index.store.shards.ShardIndex`) and
  proposes candidates for a batch of question vectors, then hands over the
  passages the router picks;
- `Router` (the ingress, one replica): the same FastAPI app as `python -m
  index serve` (`index.serve.app.create_app`), over a backend that gathers
  the questions arriving together (`serve.batch`, `BATCH_WAIT_S` at most),
  embeds them in one pass, asks every shard at the same time, once for all
  of them, merges each question's candidates and applies the single-process
  fusion and answer step (`index.search.sharded`), so it answers exactly as
  `Searcher` does.

Versions. The router watches the index's CURRENT pointer as the local server
does. It switches to a new version only once one replica of every shard has
loaded it; each request takes the router's version once and names it in
every shard call, and a replica keeps the last two versions it loaded, so a
request in flight when a rebuild is published finishes on the version it
started with, and no answer mixes two. Should a shard no longer hold a
request's version (a replica restarted after the old version was deleted),
the router answers the question again, whole, on the current version.

Failures. A replica that dies takes its calls with it; the router retries
them (Ray Serve sends the retry to a live replica, and restarts the dead one),
so a question is answered whole or, after `ATTEMPTS` failures, refused with
a 503, never answered from part of the shards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import HTTPException
from fastapi.concurrency import run_in_threadpool
from ray import serve
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from index.config import DEFAULT_BATCH_QUESTIONS, Config, one_thread_per_question
from index.embed.batching import encode_together
from index.embed.registry import Embedder
from index.errors import IndexDamaged, ModelMismatch, rebuild_fix
from index.records import Answer, DocumentInfo, Manifest, Passage, Verdict
from index.search.answer import build_answer
from index.search.confidence import ConfidenceModel
from index.search.query import clean_query
from index.search.settings import SearchSettings
from index.search.sharded import ShardCandidates, fetch, rank_shards, shard_candidates, top_by_shard
from index.serve.app import DEFAULT_ALLOWED_HOSTS, TOKEN_VARIABLE, create_app
from index.serve.cluster import check_reachable
from index.serve.watcher import DocumentLookup, IndexWatcher
from index.store.pointer import current_version, live_version
from index.store.reader import check_files, manifest_of
from index.store.shards import ShardIndex
from index.store.texts import TEXT_ROWS, TEXTS, DocumentTexts
from index.store.version import DOCUMENTS

log = logging.getLogger("kb.serving")

APP = "kb"
# A question whose shard call fails is asked again this many times in all (a dead replica
# is replaced within seconds; Ray Serve routes the retries to the live ones meanwhile).
ATTEMPTS = 6
_RETRYABLE = (RayActorError, DeploymentUnavailableError, BackPressureError)
# How long the router waits for more questions to join the first of a batch: a lone question
# waits this long; under load, the clients a batch's answers set free ask again within it.
# 2, 5, 10 and 20 ms were tried (bench/RESULTS.md, "Speed at the limit: serving that batches").
BATCH_WAIT_S = 0.010
# Batches answered at once: with one, the next batch is cut as soon as its first question
# arrives and then waits for the running one, so batches stay small and queue up.
CONCURRENT_BATCHES = 4
# Versions a shard replica keeps loaded: the live one and the one before it, for requests in flight.
KEPT_VERSIONS = 2


@dataclass(frozen=True)
class ShardQuestion:
    """What a shard needs of a question: the cleaned text (BM25), its vector and the sources it may cite."""

    query: str
    vector: np.ndarray
    sources: frozenset[str] | None


class StaleVersion(Exception):
    """A shard no longer holds the version a request started on."""


def shard_name(shard: int) -> str:
    return f"shard-{shard:03d}"


@serve.deployment(max_ongoing_requests=16)
class Shard:
    """One shard of the index, in each of its replicas: candidates for a question, then passages."""

    def __init__(self, index_dir: str, shard: int, shards: int) -> None:
        one_thread_per_question()
        self.index_dir = Path(index_dir)
        self.shard = shard
        self.shards = shards
        self._loaded: OrderedDict[str, ShardIndex] = OrderedDict()
        self._lock = threading.Lock()
        live = current_version(self.index_dir)
        if live is not None:
            self._version(live.name)  # ready with the live version before taking requests

    def _version(self, version: str) -> ShardIndex:
        with self._lock:
            if version not in self._loaded:
                if not (self.index_dir / version).is_dir():
                    raise StaleVersion(f"index version {version} is gone from {self.index_dir}")
                self._loaded[version] = ShardIndex.load(self.index_dir / version, self.shard, self.shards)
                while len(self._loaded) > KEPT_VERSIONS:
                    self._loaded.popitem(last=False)
            return self._loaded[version]

    def prepare(self, version: str) -> int:
        """Load `version` (the router asks before switching to it); returns its passage count here."""
        return len(self._version(version).passages)

    def candidates(self, version: str, questions: list[ShardQuestion], depth: int) -> list[ShardCandidates]:
        """This shard's candidates for each question of a batch (one call for them all)."""
        shard = self._version(version)
        return [shard_candidates(shard, q.query, q.vector, depth, q.sources) for q in questions]

    def fetch(self, version: str, wanted: list[tuple[list[int], np.ndarray]]) -> list[list[tuple[Passage, np.ndarray]]]:
        """For each question of a batch, (its rows, its vector): the passages and their answer candidates' cosines."""
        shard = self._version(version)
        return [fetch(shard, rows, vector) for rows, vector in wanted]

    def pid(self) -> int:
        """This replica's process id (the fault tests kill one)."""
        return os.getpid()


@dataclass
class RouterView(DocumentLookup):
    """One published version as the router serves it: its manifest, documents and texts, and the shards."""

    path: Path
    manifest: Manifest
    documents: list[DocumentInfo]
    texts: DocumentTexts
    router: ShardRouter

    @property
    def version(self) -> str:
        return self.path.name

    @classmethod
    def load(cls, path: Path, router: ShardRouter) -> RouterView:
        """The router's part of a version (documents and texts; the shards hold the passages).

        Raises:
            IndexDamaged: A file is missing or does not match the manifest, or the model differs.
        """
        manifest = manifest_of(path)
        check_files(path, manifest, [DOCUMENTS, TEXTS, TEXT_ROWS])
        documents = [DocumentInfo(**d) for d in json.loads((path / DOCUMENTS).read_text(encoding="utf-8"))]
        return cls(path, manifest, documents, DocumentTexts.load(path), router)

    async def query(self, question: str, k: int, sources: frozenset[str] | None, explain: bool) -> dict:
        answer = await self.router.answer(self, question, k, sources)
        return answer.to_json(explain)

    def info(self) -> dict:
        return {"index": str(self.path), **self.manifest.to_json()}

    def text(self, row: int) -> str:
        return self.texts.text(row)


@dataclass(frozen=True)
class Asked:
    """A question as the router answers it: the version it started on, the cleaned text, k and sources."""

    view: RouterView
    query: str
    k: int
    sources: frozenset[str] | None


class ShardRouter(IndexWatcher):
    """The API's backend on Ray Serve: watches the index, routes each question over the shards."""

    thread_name = "kb-router-watch"
    recoverable = (Exception,)  # a shard that cannot take the new version too

    def __init__(
        self,
        config: Config,
        handles: list,
        settings: SearchSettings = SearchSettings(),
        poll: float = 1.0,
    ) -> None:
        super().__init__(config, settings, poll)
        self.shards = len(handles)
        self.confidence = ConfidenceModel.bundled()
        self._handles = handles
        if config.batch_questions > 1:
            self._answer_together.set_max_batch_size(config.batch_questions)

    def _load(self, version: Path, embedder: Embedder) -> RouterView:
        view = self._switch_to(version, embedder)
        log.info("serving index version %s over %d shards", version.name, self.shards)
        return view

    def _missing(self) -> str:
        return (
            f"no index found in {self.config.index}; "
            f"build one with: python -m ingest --index {self.config.index} --shards {self.shards}"
        )

    def _switch_to(self, version: Path, embedder: Embedder) -> RouterView:
        view = RouterView.load(version, self)
        if view.manifest.model != embedder.name:
            raise ModelMismatch(
                f"index {version.parent} was built with model {view.manifest.model!r}, "
                f"but the router embeds with {embedder.name!r}",
                rebuild_fix(version.parent),
            )
        if view.manifest.shards != self.shards:
            raise IndexDamaged(
                f"index {version} has {view.manifest.shards or 'no'} shards, not {self.shards}",
                f"{rebuild_fix(version.parent)} --shards {self.shards}",
            )
        # One replica of each shard loads it now; the others load it on their first request.
        held = [h.prepare.remote(version.name).result(timeout_s=600) for h in self._handles]
        if sum(held) != view.manifest.passages:
            raise IndexDamaged(
                f"the shards of {version} hold {sum(held)} passages, not {view.manifest.passages}",
                rebuild_fix(version.parent),
            )
        return view

    async def answer(self, view: RouterView, question: str, k: int, sources: frozenset[str] | None) -> Answer:
        """Answer on `view`; on the current version instead if a shard no longer holds it.

        Questions asked together travel together (`_answer_together`): one model pass embeds them
        and each shard gets one call for all of them, so the hops between processes are paid per batch.
        """
        query = clean_query(question)
        if not query or k < 1:
            return Answer(query, Verdict.NOT_ANSWERED, ())
        asked = Asked(view, query, k, sources)
        if self.config.batch_questions > 1:
            answer = await self._answer_together(asked)
        else:  # KB_BATCH_QUESTIONS=1: each question its own pass and shard calls
            [answer] = await self._answer_batch([asked])
        if isinstance(answer, BaseException):
            raise answer
        return answer

    @serve.batch(
        max_batch_size=DEFAULT_BATCH_QUESTIONS,
        batch_wait_timeout_s=BATCH_WAIT_S,
        max_concurrent_batches=CONCURRENT_BATCHES,
    )
    async def _answer_together(self, asked: list[Asked]) -> list[Answer | BaseException]:
        """The questions that reached the router within `BATCH_WAIT_S` of each other, answered as one batch.

        Up to `CONCURRENT_BATCHES` batches are answered at once, so a batch rarely waits for the one before it.
        """
        return await self._answer_batch(asked)

    async def _answer_batch(self, asked: list[Asked]) -> list[Answer | BaseException]:
        """Each question's answer, or the error that refuses it: one model pass, then each version's questions together."""
        vectors = await run_in_threadpool(encode_together, self.embedder, [a.query for a in asked])
        by_version: dict[str, list[int]] = {}
        for i, a in enumerate(asked):
            by_version.setdefault(a.view.version, []).append(i)
        groups = list(by_version.values())
        done = await asyncio.gather(
            *(self._answer_retrying([asked[i] for i in g], [vectors[i] for i in g]) for g in groups),
            return_exceptions=True,
        )
        answers: dict[int, Answer | BaseException] = {}
        for group, result in zip(groups, done):
            for n, i in enumerate(group):
                answers[i] = result if isinstance(result, BaseException) else result[n]
        return [answers[i] for i in range(len(asked))]

    async def _answer_retrying(self, asked: list[Asked], vectors: list[np.ndarray]) -> list[Answer]:
        """Questions of one version, answered whole: a failed shard call is retried, a version gone moves them to the current one."""
        view = asked[0].view
        for attempt in range(ATTEMPTS):
            try:
                return await self._answer(view.version, asked, vectors)
            except Exception as exc:
                if _is(exc, _RETRYABLE):
                    log.warning("a shard call failed (attempt %d of %d): %s", attempt + 1, ATTEMPTS, exc)
                    await asyncio.sleep(0.2 * 2**attempt)
                    continue
                if not _is(exc, (StaleVersion,)):
                    raise
                current = self._view
                if current is None or current.version == view.version:
                    raise HTTPException(503, "the index version this question started on is gone; ask again") from None
                view = current
        raise HTTPException(503, "a shard did not answer; ask again in a moment", headers={"Retry-After": "1"})

    async def _answer(self, version: str, asked: list[Asked], vectors: list[np.ndarray]) -> list[Answer]:
        questions = [ShardQuestion(a.query, v, a.sources) for a, v in zip(asked, vectors)]
        parts = await asyncio.gather(
            *(h.candidates.remote(version, questions, self.settings.candidates) for h in self._handles)
        )
        rankings, wanted = [], []  # per question: its ranking, and the rows it needs from each shard
        for i, a in enumerate(asked):
            ranking, owner = rank_shards([part[i] for part in parts], self.settings)
            rankings.append(ranking)
            wanted.append(top_by_shard(ranking, owner, max(a.k, self.settings.rerank_depth)))
        asking = {s: [i for i in range(len(asked)) if s in wanted[i]] for s in range(self.shards)}
        asking = {s: which for s, which in asking.items() if which}  # the shards holding some question's hits
        fetched = await asyncio.gather(
            *(
                self._handles[s].fetch.remote(version, [(wanted[i][s], vectors[i]) for i in which])
                for s, which in asking.items()
            )
        )
        passages: list[dict] = [{} for _ in asked]
        cosines: list[dict] = [{} for _ in asked]
        for (s, which), found in zip(asking.items(), fetched):
            for i, pairs in zip(which, found):
                for row, (passage, sentence) in zip(wanted[i][s], pairs):
                    passages[i][row], cosines[i][row] = passage, sentence
        return [
            build_answer(a.query, rankings[i], a.k, passages[i], cosines[i], self.settings, self.confidence, a.sources)
            for i, a in enumerate(asked)
        ]


def _is(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether `exc`, or the exception a replica raised that it wraps, is one of `kinds`."""
    return isinstance(exc, kinds) or (isinstance(exc, RayTaskError) and isinstance(exc.cause, kinds))


@serve.deployment(max_ongoing_requests=64)
@serve.ingress()
class Router:
    """The ingress: the API of `index.serve.app` over a `ShardRouter`."""

    def __init__(self, config: Config, token: str | None, allowed_hosts: tuple[str, ...], *shards) -> None:
        one_thread_per_question()
        self.backend = ShardRouter(config, list(shards))  # Serve hands the bound shards in as handles
        self.token = token
        self.allowed_hosts = allowed_hosts

    def __serve_build_asgi_app__(self):
        # The same app as `python -m index serve`: the token, the body size and the Host header checked alike.
        return create_app(self.backend, token=self.token, allowed_hosts=self.allowed_hosts)


def deploy(
    config: Config,
    shards: int,
    replicas: int,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS,
) -> None:
    """Start Serve on the connected Ray cluster and deploy the API; returns once every replica is up.

    Args:
        config: The index folder and the model (the router embeds with it).
        shards: Shard deployments; the live version must have been built with as many.
        replicas: Replicas of each shard.
        host / port: Where Serve's HTTP proxy listens.
        token: When given, the data endpoints need it as a bearer token.
        allowed_hosts: The names a request's Host header may give ("*": any).
    """
    serve.start(http_options={"host": host, "port": port})
    # No CPU reservation: on a small machine N x R replicas share the cores, as processes do.
    bound = [
        Shard.options(name=shard_name(s), num_replicas=replicas, ray_actor_options={"num_cpus": 0}).bind(
            str(config.index), s, shards
        )
        for s in range(shards)
    ]
    router = Router.options(ray_actor_options={"num_cpus": 0}).bind(config, token, tuple(allowed_hosts), *bound)
    serve.run(router, name=APP, route_prefix="/")


def serve_on_ray(
    config: Config,
    address: str | None,
    shards: int,
    replicas: int,
    host: str = "127.0.0.1",
    port: int = 8000,
    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS,
) -> None:
    """`python -m index serve --ray`: deploy on the cluster at `address` (a local instance when None), serve until Ctrl-C."""
    import ray

    live = live_version(config.index)
    ShardIndex.load(live, 0, shards)  # refuse now, with the fix, before starting anything
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports over the network
    if address:
        check_reachable(address, to="serve")
        import index

        # Replicas on other nodes get this package shipped to them (Ray packs its folder), as ingest's workers do.
        ray.init(address=address, runtime_env={"py_modules": [index]}, log_to_driver=False)
    else:
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
    try:
        token = os.environ.get(TOKEN_VARIABLE) or None
        deploy(config, shards, replicas, host, port, token=token, allowed_hosts=allowed_hosts)
        print(
            f"Serving {live} on Ray Serve at http://{host}:{port} ({shards} shards x {replicas} replicas); Ctrl-C stops"
        )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        ray.shutdown()
