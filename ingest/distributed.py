"""The same ingest pipeline on Ray: parallel reading and chunking, a pool of embedding actors.

`build_on_ray` runs `pipeline.build` with a `RayExecutor`, so every step of
the build (the publish lock, the up-to-date check, the corpus-wide record-id
rule, global de-duplication on the driver, vector reuse by passage id, the
atomic publish and its manifest verification) is the local code itself, and
only where the parallel work runs differs:

- `RayExecutor.map` runs the pipeline's functions as Ray tasks over batches
  of items, results in order: reading files (`loaders.read_file`), chunking
  documents (each worker builds the embedder once, for its token counter),
  and, for a collection past `Settings.exact_search_limit`, adding the
  approximate index's parts before their lists are merged on disk
  (`index.retrievers.parts`; parts travel as arrays, so no file system is shared);
- `RayEmbedder`, an `Embedder` whose `encode_spans` streams the texts through a
  pool of actors, each building its model once from a picklable factory
  (`functools.partial(get_embedder, name, config)`, or a test's fake class).

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import numpy as np

from index.embed.registry import Embedder, EmbedderBase, longest_first
from index.records import Settings
from index.serve.cluster import check_reachable
from ingest.chunking import Chunk, chunk_document
from ingest.loaders import Document
from ingest.pipeline import BuildReport, Item, Result, build

EmbedderFactory = Callable[[], Embedder]
# Tasks per CPU for a map: enough that a slow batch does not hold the others up, few enough to stay cheap.
_TASKS_PER_CPU = 4

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
    **build_options,
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
        build_options: `settings`, `progress`, `rules` and `shards`, as `pipeline.build` takes them.

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
        executor = RayExecutor(factory, workers=workers, batch_size=batch_size)
        return build(corpus, index_dir, executor=executor, **build_options)


class RayExecutor:
    """A `pipeline.Executor` on the connected Ray cluster: maps as Ray tasks, embedding on an actor pool."""

    def __init__(self, factory: EmbedderFactory, workers: int, batch_size: int = 64) -> None:
        self.factory = factory
        self.embedder = RayEmbedder(factory, workers=workers, batch_size=batch_size)

    def map(self, function: Callable[[Item], Result], items: Sequence[Item]) -> Iterator[Result]:
        """`function` over `items` in Ray tasks of one CPU, a few per CPU, each over consecutive items.

        Results come back in the items' order, a task's worth at a time. Ray
        retries a task whose worker dies.
        """
        import ray

        items = list(items)
        if not items:
            return iter(())
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        bounds = np.linspace(0, len(items), min(len(items), _TASKS_PER_CPU * cpus) + 1).astype(int)
        task = ray.remote(num_cpus=1)(_apply)
        refs = [task.remote(function, items[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        return (result for ref in refs for result in ray.get(ref))

    def chunker(self, settings: Settings) -> Callable[[Document], list[Chunk]]:
        return WorkerChunker(self.factory, settings)


def _apply(function: Callable, items: list) -> list:
    """Ray task: `function` over a batch of items."""
    return [function(item) for item in items]


class WorkerChunker:
    """Chunks a document with the token counter of the worker's own embedder (built once per worker)."""

    def __init__(self, factory: EmbedderFactory, settings: Settings) -> None:
        self.factory = factory
        self.settings = settings
        self._count_tokens: Callable[[str], int] | None = None  # set on the worker, at its first document

    def __call__(self, document: Document) -> list[Chunk]:
        if self._count_tokens is None:
            self._count_tokens = _worker_embedder(self.factory).count_tokens
        return chunk_document(document, self._count_tokens, self.settings)


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
        check_reachable(address, to="run")
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


def _quiet_ray_data() -> None:
    """Our own progress bar reports the work; Ray Data's per-operator bars and logs would interleave with it."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


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
        spans = [[(int(s), int(e)) for s, e in np.asarray(flat).reshape(-1, 2)] for flat in batch["spans"]]
        vectors, span_vectors = self.embedder.encode_spans(list(batch["text"]), spans)
        # Each passage's candidate vectors travel flattened (their count varies), rebuilt on the driver.
        return {"row": batch["row"], "vector": vectors, "sentences": [rows.reshape(-1) for rows in span_vectors]}


class RayEmbedder(EmbedderBase):
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

    def encode_spans(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """`Embedder.encode_spans` on the actor pool; each text's rows are written exactly once."""
        import ray.data

        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        span_vectors: list[np.ndarray] = [np.zeros((0, self.dimensions), dtype=np.float32)] * len(texts)
        if not texts:
            return out, span_vectors
        filled = np.zeros(len(texts), dtype=bool)
        # About four batches per block: every actor gets work, and progress moves every few batches.
        blocks = min(len(texts), max(self.workers, -(-len(texts) // (4 * self.batch_size))))
        # As BundledModel.encode orders them locally, so each actor batch pads to similar lengths.
        items = [
            {"row": int(row), "text": texts[row], "spans": np.asarray(spans[row], dtype=np.int64).reshape(-1)}
            for row in longest_first(texts)
        ]
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
            for row, flat in zip(rows, batch["sentences"]):
                span_vectors[row] = np.asarray(flat, dtype=np.float32).reshape(-1, self.dimensions)
            filled[rows] = True
            if progress is not None:
                progress(len(rows))
        if not filled.all():
            raise RuntimeError(f"{int((~filled).sum())} passages came back without vectors from the Ray actors")
        return out, span_vectors
