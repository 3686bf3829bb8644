"""A large vector index assembled from parts (consecutive runs of rows) on disk and served memory-mapped.

(A part is a build-time batch of vectors; a serving shard, `index.store.shards`, is another thing.)

Past a few million passages a flat index no longer fits comfortably in one
process, and building it in one place takes too long. This assembles a FAISS
IVF index with compressed codes (scalar quantization `SQ8`, or product
quantization `PQ<m>`) the way FAISS's own `contrib.ondisk` recipe does:

1. train the coarse quantizer and the codec once, on a sample of the vectors;
2. add each part of vectors to its own copy of the empty trained index, in
   parallel (any `map`: the builtin, or Ray tasks on other nodes, since
   parts travel as arrays and come back as serialized indexes), with ids
   that are the vectors' global row numbers, so row i is still passage i;
3. merge the parts' inverted lists into one `OnDiskInvertedLists` file;
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
# for array-backed lists (merge_ondisk reads the parts with it); on a merged index it
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
    """`vectors` as consecutive parts of at most `rows` rows (views: a memory map stays on disk)."""
    return [vectors[begin : begin + rows] for begin in range(0, len(vectors), rows)]


def sample_rows(parts: Sequence[np.ndarray], size: int, seed: int) -> np.ndarray:
    """Up to `size` vectors drawn uniformly from all parts (only those rows are read from a memory map)."""
    total = sum(len(a) for a in parts)
    picks = np.sort(np.random.default_rng(seed).choice(total, size=min(size, total), replace=False))
    starts = np.cumsum([0] + [len(a) for a in parts])
    out = []
    for part, array in enumerate(parts):
        mine = picks[(picks >= starts[part]) & (picks < starts[part + 1])] - starts[part]
        out.append(np.asarray(array[mine], dtype=np.float32))
    return np.concatenate(out)


def add_part(trained: np.ndarray, vectors: np.ndarray, first_id: int) -> np.ndarray:
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
    parts: Sequence[np.ndarray],
    out_dir: Path,
    plan: IvfPlan,
    map_fn: Map = map,
    name: str = MERGED,
) -> Path:
    """Build a memory-mappable IVF index over vector parts (row order = part order).

    Args:
        parts: Unit vectors, part k holding the rows after part k-1 (arrays or memory maps).
        out_dir: Receives the index file `name` and `lists.ivfdata` (plus the
            per-part indexes, deleted once merged).
        plan: Lists, codec, training sample.
        map_fn: Runs `add_part` over the parts, `map(f, *iterables)` semantics:
            the builtin (each add already uses every core), or Ray tasks.
        name: File name of the merged index.

    Returns:
        The path of the merged index file, to open with `load_mmap`.
    """
    if not parts:
        raise ValueError("no vector parts to assemble")
    out_dir.mkdir(parents=True, exist_ok=True)
    trained = train(sample_rows(parts, plan.sample, plan.seed), plan)
    blob = faiss.serialize_index(trained)
    sizes = [len(part) for part in parts]
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
    files = []
    for k, added in enumerate(map_fn(add_part, [blob] * len(parts), parts, firsts)):
        files.append(out_dir / f"part-{k:05d}.index")
        np.asarray(added).tofile(files[-1])  # serialize_index writes what write_index would
    counts = [faiss.read_index(str(p), faiss.IO_FLAG_MMAP).ntotal for p in files]
    if counts != sizes:
        raise RuntimeError(f"parts added {counts} vectors, expected {sizes}")
    merge_ondisk(trained, [str(p) for p in files], str(out_dir / LISTS))
    faiss.write_index(trained, str(out_dir / name))
    for path in files:
        path.unlink()
    return out_dir / name


def load_mmap(path: Path, probes: int = 16) -> faiss.Index:
    """Open a merged index with its inverted lists memory-mapped (found beside the index file)."""
    index = faiss.read_index(str(path), _FLAGS)
    faiss.extract_index_ivf(index).nprobe = probes
    return index
