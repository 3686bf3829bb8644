"""A large vector index assembled from shards on disk and served memory-mapped.

Past a few million passages a flat index no longer fits comfortably in one
process, and building it in one place takes too long. This assembles a FAISS
IVF index with compressed codes (scalar quantization `SQ8`, or product
quantization `PQ<m>`) the way FAISS's own `contrib.ondisk` recipe does:

1. train the coarse quantizer and the codec once, on a sample of the vectors;
2. add each shard of vectors to its own copy of the empty trained index, in
   parallel (any `map`: the builtin, or Ray tasks on other nodes, since
   shards travel as arrays and come back as serialized indexes), with ids
   that are the vectors' global row numbers, so row i is still passage i;
3. merge the shards' inverted lists into one `OnDiskInvertedLists` file;
4. load the result with its lists memory-mapped read-only, so the operating
   system pages lists in as queries touch them instead of the process reading
   them all (and processes on one node share those pages).

The merged index keeps its lists in `lists.ivfdata` beside the index file,
found relative to the index file, so the folder can be renamed into place
like every other version folder.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from faiss.contrib.ondisk import merge_ondisk

MERGED = "vectors.index"
LISTS = "lists.ivfdata"
# OnDiskInvertedLists always memory-map their file, read-only with this flag. IO_FLAG_MMAP is
# for array-backed lists (merge_ondisk reads the shards with it); on a merged index it
# crashes faiss-cpu 1.15.1 in search.
_CODEC = re.compile(r"SQ8|PQ\d+(x\d+)?")
_FLAGS = faiss.IO_FLAG_READ_ONLY | faiss.IO_FLAG_ONDISK_SAME_DIR
# `map(function, *iterables)` or a parallel equivalent (Ray tasks on the Ray path).
Map = Callable[..., Iterable]


@dataclass(frozen=True)
class IvfPlan:
    """How to build the index.

    Attributes:
        lists: Inverted lists (clusters); FAISS suggests 4 to 16 x sqrt(vectors).
        codec: `SQ8` (1 byte per dimension), `PQ<m>` (m bytes per vector) or
            `PQ<m>x<bits>` (m codes of `bits` bits).
        sample: Vectors used for training; at least 39 per list avoids FAISS's warning.
        seed: For the training sample, so a rebuild trains the same index.
    """

    lists: int
    codec: str = "SQ8"
    sample: int = 100_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.lists < 1:
            raise ValueError(f"lists must be at least 1, got {self.lists}")
        if not _CODEC.fullmatch(self.codec):
            raise ValueError(f"codec must be 'SQ8', 'PQ<m>' or 'PQ<m>x<bits>' (for example 'PQ48'), got {self.codec!r}")

    @property
    def factory(self) -> str:
        """The FAISS factory string, e.g. `IVF2000,SQ8`."""
        return f"IVF{self.lists},{self.codec}"

    @classmethod
    def parse(cls, factory: str, **fields) -> IvfPlan:
        """The plan for a factory string `IVF<lists>,<codec>` (other fields from `fields`)."""
        match = re.fullmatch(r"IVF(\d+),(.+)", factory)
        if match is None:
            raise ValueError(f"not an IVF factory string: {factory!r}")
        return cls(lists=int(match[1]), codec=match[2], **fields)


def train(sample: np.ndarray, plan: IvfPlan) -> faiss.Index:
    """An empty IVF index (inner product, for unit vectors) trained on `sample`."""
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if len(sample) < plan.lists:
        raise ValueError(f"{len(sample)} training vectors cannot train {plan.lists} lists; lower IvfPlan.lists")
    index = faiss.index_factory(sample.shape[1], plan.factory, faiss.METRIC_INNER_PRODUCT)
    if hasattr(index, "do_polysemous_training"):
        index.do_polysemous_training = False  # codes for Hamming pre-filtering we never use; 10x the training time
    index.train(sample)
    return index


def split(vectors: np.ndarray, rows: int) -> list[np.ndarray]:
    """`vectors` as consecutive shards of at most `rows` rows (views: a memory map stays on disk)."""
    return [vectors[begin : begin + rows] for begin in range(0, len(vectors), rows)]


def sample_rows(shards: Sequence[np.ndarray], size: int, seed: int) -> np.ndarray:
    """Up to `size` vectors drawn uniformly from all shards (only those rows are read from a memory map)."""
    total = sum(len(a) for a in shards)
    picks = np.sort(np.random.default_rng(seed).choice(total, size=min(size, total), replace=False))
    starts = np.cumsum([0] + [len(a) for a in shards])
    out = []
    for shard, array in enumerate(shards):
        mine = picks[(picks >= starts[shard]) & (picks < starts[shard + 1])] - starts[shard]
        out.append(np.asarray(array[mine], dtype=np.float32))
    return np.concatenate(out)


def add_shard(trained: np.ndarray, vectors: np.ndarray, first_id: int) -> np.ndarray:
    """The serialized trained index with `vectors` added as ids `first_id`, `first_id + 1`, ...

    Takes and returns serialized indexes (bytes as a numpy array, what
    `faiss.serialize_index` gives), so it runs as well in a Ray task on
    another node as in this process: no file system is shared.
    """
    index = faiss.deserialize_index(trained)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index.add_with_ids(vectors, np.arange(first_id, first_id + len(vectors), dtype=np.int64))
    return faiss.serialize_index(index)


def assemble(
    shards: Sequence[np.ndarray],
    out_dir: Path,
    plan: IvfPlan,
    map_fn: Map = map,
    name: str = MERGED,
) -> Path:
    """Build a memory-mappable IVF index over vector shards (row order = shard order).

    Args:
        shards: Unit vectors, shard k holding the rows after shard k-1 (arrays or memory maps).
        out_dir: Receives the index file `name` and `lists.ivfdata` (plus the
            per-shard indexes, deleted once merged).
        plan: Lists, codec, training sample.
        map_fn: Runs `add_shard` over the shards, `map(f, *iterables)` semantics:
            the builtin (each add already uses every core), or Ray tasks.
        name: File name of the merged index.

    Returns:
        The path of the merged index file, to open with `load_mmap`.
    """
    if not shards:
        raise ValueError("no vector shards to assemble")
    out_dir.mkdir(parents=True, exist_ok=True)
    trained = train(sample_rows(shards, plan.sample, plan.seed), plan)
    blob = faiss.serialize_index(trained)
    sizes = [len(shard) for shard in shards]
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
    parts = []
    for k, added in enumerate(map_fn(add_shard, [blob] * len(shards), shards, firsts)):
        parts.append(out_dir / f"shard-{k:05d}.index")
        np.asarray(added).tofile(parts[-1])  # serialize_index writes what write_index would
    counts = [faiss.read_index(str(p), faiss.IO_FLAG_MMAP).ntotal for p in parts]
    if counts != sizes:
        raise RuntimeError(f"shards added {counts} vectors, expected {sizes}")
    merge_ondisk(trained, [str(p) for p in parts], str(out_dir / LISTS))
    faiss.write_index(trained, str(out_dir / name))
    for path in parts:
        path.unlink()
    return out_dir / name


def load_mmap(path: Path, probes: int = 16) -> faiss.Index:
    """Open a merged index with its inverted lists memory-mapped (found beside the index file)."""
    index = faiss.read_index(str(path), _FLAGS)
    faiss.extract_index_ivf(index).nprobe = probes
    return index
