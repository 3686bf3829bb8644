"""The same ingest pipeline on Ray: parallel reading and chunking, a pool of embedding actors.

`build_on_ray` runs `pipeline.build` with two parts swapped for Ray Data
stages, so everything between them (the publish lock, the up-to-date check,
global de-duplication on the driver, vector reuse by passage id, the atomic
publish and its manifest verification) is the local code itself:

- reading: one Ray task per file (`loaders.read_file`); the driver then
  applies the corpus-wide record-id rule (`loaders.unique_records`) in corpus
  order, and chunking runs as Ray tasks over batches of documents;
- embedding: `RayEmbedder`, an `Embedder` whose `encode` streams the texts
  through a pool of actors, each building its model once from a picklable
  factory (the class `BundledModel`, or a test's fake);
- for a collection past `Settings.exact_search_limit`, the approximate
  index's shards are added by Ray tasks before their lists are merged on
  disk (`index.shards`); shards travel as arrays, so no file system is shared.

Vectors come back through Ray's object store, batch by batch, and the driver
writes each batch into its rows of the one matrix that `publish` needs
anyway. Ray's streaming executor caps the batches in flight, so memory stays
at the final matrix plus a few batches; rows are checked so that a batch
retried after a worker died can neither be lost nor counted twice.
Returning vectors (rather than having actors write `.npy` files) means no
shared file system is needed between nodes for the vectors; the corpus
itself must be readable at the same path on every node.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import numpy as np

from index.embedding import Embedder, longest_first
from index.records import DocumentInfo, Settings, Skipped
from ingest.chunking import Chunk, chunk_document
from ingest.loaders import Document, corpus_root, discover, read_file, unique_records
from ingest.pipeline import BuildReport, KnownChunks, Progress, Stage, _info, build, known_chunks

EmbedderFactory = Callable[[], Embedder]

# Per worker process: the embedder each factory built, so tasks reuse one tokenizer.
_WORKER_EMBEDDERS: dict[bytes, Embedder] = {}


def build_on_ray(
    corpus: Path,
    index_dir: Path,
    factory: EmbedderFactory,
    *,
    address: str | None = None,
    workers: int | None = None,
    batch_size: int = 64,
    settings: Settings = Settings(),
    progress: Progress | None = None,
    strict: bool = False,
) -> BuildReport:
    """`pipeline.build` with reading, chunking and embedding spread over a Ray cluster.

    Args:
        corpus: Folder of documents, or one file; readable at the same path on every node.
        index_dir: Index folder (on the driver); published exactly as a local build would.
        factory: Builds the embedder; called once per embedding actor and per reading worker.
        address: A running cluster to join (`ray start --head` prints it); None starts a
            local instance, unless this process is already connected to one.
        workers: Embedding actors, one CPU each; default: every CPU of the cluster.
        batch_size: Passages per actor call (and per progress update).
        settings: Chunking settings.
        progress: Called as `progress(stage, done, total)`, like `build`.
        strict: Refuse to publish when anything was skipped.

    Returns:
        The same report `build` gives.

    Raises:
        ValueError: `workers` or `batch_size` is out of range for this cluster.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    with ray_session(address):
        import ray

        cpus = int(ray.cluster_resources().get("CPU", 0))
        workers = cpus if workers is None else workers
        if not 1 <= workers <= cpus:
            raise ValueError(f"--workers must be between 1 and the cluster's {cpus} CPUs, got {workers}")
        embedder = RayEmbedder(factory, workers=workers, batch_size=batch_size)
        return build(
            corpus, index_dir, embedder, settings, progress, strict, read=RayReader(factory), parallel_map=_ray_map
        )


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Connected to Ray for the duration: reuse a connection, join `address`, or start locally."""
    import ray
    import ray.data

    # Ray would otherwise report usage statistics over the network; builds stay offline.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        _quiet_ray_data()
        yield
        return
    if address:
        _check_reachable(address)
        import index
        import ingest

        # Workers on other nodes get this project's packages shipped to them (Ray packs the modules' folders).
        runtime_env = {"py_modules": [index, ingest]}
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False, configure_logging=False)
    else:
        # Local workers run this interpreter, where the project is installed (`pip install -e .`).
        ray.init(
            address="local",  # a new instance, even when `ray start` runs a cluster on this machine
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        _quiet_ray_data()
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast on a `host:port` where nothing listens: `ray.init` would retry for minutes.

    Raises:
        ConnectionError: Nothing accepted a connection at `address` within `timeout` seconds.
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return  # "auto", "ray://..." and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with `ray start --head` "
            "and pass the address it prints, or omit the address to run on a local Ray instance"
        ) from None


def _quiet_ray_data() -> None:
    """Our own progress bar reports the work; Ray Data's per-operator bars and logs would interleave with it."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


class RayReader:
    """A `pipeline.Reader`: files read by Ray tasks, documents chunked by Ray tasks, in corpus order."""

    def __init__(self, factory: EmbedderFactory) -> None:
        self.factory = factory

    def __call__(self, corpus: Path, embedder: Embedder, settings: Settings, files: int, report: Progress, known: KnownChunks):
        import ray.data

        root = corpus_root(corpus)
        badly_named: list[Skipped] = []
        paths = [{"file": i, "path": str(path)} for i, path in enumerate(discover(corpus, rejected=badly_named))]
        report(Stage.READ, 0, files)
        read = ray.data.from_items(paths, override_num_blocks=max(1, len(paths))).flat_map(
            _read_rows, fn_kwargs={"root": str(root)}
        )
        rows, done = [], set()
        for row in read.iter_rows():
            rows.append(row)
            if row["file"] not in done:
                done.add(row["file"])
                report(Stage.READ, len(done), files)
        rows.sort(key=lambda r: (r["file"], r["item"]))
        items = list(unique_records(r["record"] for r in rows))
        docs = [item for item in items if isinstance(item, Document)]
        # Documents whose text the live index already cut keep its chunks; only the rest go to Ray.
        chunks_of = [known_chunks(doc, known) for doc in docs]
        todo = [n for n, chunks in enumerate(chunks_of) if chunks is None]
        for n, chunks in zip(todo, self._chunk([docs[n] for n in todo], settings)):
            chunks_of[n] = chunks
        documents: list[DocumentInfo] = [_info(doc, len(chunks)) for doc, chunks in zip(docs, chunks_of)]
        chunks = [chunk for doc_chunks in chunks_of for chunk in doc_chunks]
        skipped = badly_named + [item for item in items if isinstance(item, Skipped)]
        report(Stage.READ, files, files)
        return documents, chunks, skipped

    def _chunk(self, docs: list[Document], settings: Settings) -> list[list[Chunk]]:
        import ray.data

        if not docs:
            return []
        blocks = min(len(docs), 4 * max(1, int(ray.cluster_resources().get("CPU", 1))))
        items = [{"n": n, "document": doc} for n, doc in enumerate(docs)]
        chunked = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            _chunk_batch, fn_kwargs={"factory": self.factory, "settings": settings}, batch_size=None
        )
        out: list[list[Chunk] | None] = [None] * len(docs)
        for row in chunked.iter_rows():
            out[row["n"]] = row["chunks"]
        missing = [n for n, chunks in enumerate(out) if chunks is None]
        if missing:
            raise RuntimeError(f"{len(missing)} documents came back unchunked from the Ray tasks")
        return out


def _read_rows(row: dict, root: str) -> list[dict]:
    """Ray task: one file's documents and problems, numbered so the driver can restore corpus order."""
    items = read_file(Path(row["path"]), Path(root))
    return [{"file": row["file"], "item": j, "record": item} for j, item in enumerate(items)]


def _chunk_batch(batch: dict, factory: EmbedderFactory, settings: Settings) -> dict:
    """Ray task: chunk a batch of documents with the embedder's token counter."""
    count_tokens = _worker_embedder(factory).count_tokens
    return {
        "n": batch["n"],
        "chunks": [chunk_document(doc, count_tokens, settings) for doc in batch["document"]],
    }


def _worker_embedder(factory: EmbedderFactory) -> Embedder:
    import ray.cloudpickle

    key = ray.cloudpickle.dumps(factory)
    if key not in _WORKER_EMBEDDERS:
        _WORKER_EMBEDDERS[key] = factory()
    return _WORKER_EMBEDDERS[key]


class EmbedActor:
    """Ray Data callable class: one embedder per actor, built once, reused for every batch."""

    def __init__(self, factory: EmbedderFactory) -> None:
        self.embedder = factory()

    def __call__(self, batch: dict) -> dict:
        return {"row": batch["row"], "vector": self.embedder.encode(list(batch["text"]))}


class RayEmbedder:
    """An `Embedder` whose `encode` runs on a pool of Ray actors.

    Name, dimensions and token counting come from a local instance of the
    same factory (the bundled model loads its weights only when used), so the
    manifest records the same model as a local build.
    """

    def __init__(self, factory: EmbedderFactory, workers: int, batch_size: int = 64) -> None:
        self.factory = factory
        self.workers = workers
        self.batch_size = batch_size
        self.name = self.local.name
        self.dimensions = self.local.dimensions
        self.max_tokens = self.local.max_tokens

    @cached_property
    def local(self) -> Embedder:
        return self.factory()

    def count_tokens(self, text: str) -> int:
        return self.local.count_tokens(text)

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed on the actor pool; row i of the result is `texts[i]`, each row written exactly once."""
        import ray.data

        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        filled = np.zeros(len(texts), dtype=bool)
        # About four batches per block: every actor gets work, and progress moves every few batches.
        blocks = min(len(texts), max(self.workers, -(-len(texts) // (4 * self.batch_size))))
        # As BundledModel.encode orders them locally, so each actor batch pads to similar lengths.
        items = [{"row": int(row), "text": texts[row]} for row in longest_first(texts)]
        vectors = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            EmbedActor,
            fn_constructor_args=(self.factory,),
            batch_size=self.batch_size,
            compute=ray.data.ActorPoolStrategy(size=self.workers),
            num_cpus=1,
        )
        for batch in vectors.iter_batches(batch_size=None, batch_format="numpy"):
            rows = batch["row"]
            if filled[rows].any():
                raise RuntimeError(f"passage rows {rows[filled[rows]].tolist()[:5]} were embedded twice")
            out[rows] = batch["vector"]
            filled[rows] = True
            if progress is not None:
                progress(len(rows))
        if not filled.all():
            raise RuntimeError(f"{int((~filled).sum())} passages came back without vectors from the Ray actors")
        return out


def _ray_map(function: Callable, *iterables) -> list:
    """`map` with one Ray task per item (index shards are added this way)."""
    import ray

    remote = ray.remote(num_cpus=1)(function)
    return ray.get([remote.remote(*args) for args in zip(*iterables)])
