"""A large vector index assembled from shards on disk and served memory-mapped.

Past a few million passages a flat index no longer fits comfortably in one
process, and building it in one place takes too long. This assembles a FAISS
IVF index with compressed codes (scalar quantization `SQ8`, or product
quantization `PQ<m>`) the way FAISS's own `contrib.ondisk` recipe does:

1. train the coarse quantizer and the codec once, on a sample of the vectors;
2. add each shard of vectors to its own copy of the empty trained index, in
   parallel (any `map`: the builtin, a thread pool, or Ray tasks), with ids
   that are the vectors' global row numbers, so row i is still passage i;
3. merge the shards' inverted lists into one `OnDiskInvertedLists` file;
4. load the result with its lists memory-mapped read-only, so the operating
   system pages lists in as queries touch them instead of the process reading
   them all (and processes on one node share those pages).

The merged index keeps its lists in `lists.ivfdata` beside `vectors.index`,
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

TRAINED = "trained.index"
MERGED = "vectors.index"
LISTS = "lists.ivfdata"
# OnDiskInvertedLists always memory-map their file, read-only with this flag. IO_FLAG_MMAP is
# for array-backed lists (merge_ondisk reads the shards with it); on a merged index it
# crashes faiss-cpu 1.15.1 in search.
_CODEC = re.compile(r"SQ8|PQ\d+(x\d+)?")
_FLAGS = faiss.IO_FLAG_READ_ONLY | faiss.IO_FLAG_ONDISK_SAME_DIR


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


def train(sample: np.ndarray, plan: IvfPlan) -> faiss.Index:
    """An empty IVF index (inner product, for unit vectors) trained on `sample`."""
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if len(sample) < plan.lists:
        raise ValueError(f"{len(sample)} training vectors cannot train {plan.lists} lists; lower IvfPlan.lists")
    index = faiss.index_factory(sample.shape[1], f"IVF{plan.lists},{plan.codec}", faiss.METRIC_INNER_PRODUCT)
    if hasattr(index, "do_polysemous_training"):
        index.do_polysemous_training = False  # codes for Hamming pre-filtering we never use; 10x the training time
    index.train(sample)
    return index


def sample_rows(shards: Sequence[Path], size: int, seed: int) -> np.ndarray:
    """Up to `size` vectors drawn uniformly from `.npy` shards, read memory-mapped."""
    arrays = [np.load(path, mmap_mode="r") for path in shards]
    total = sum(len(a) for a in arrays)
    picks = np.sort(np.random.default_rng(seed).choice(total, size=min(size, total), replace=False))
    starts = np.cumsum([0] + [len(a) for a in arrays])
    out = []
    for shard, array in enumerate(arrays):
        mine = picks[(picks >= starts[shard]) & (picks < starts[shard + 1])] - starts[shard]
        out.append(np.asarray(array[mine], dtype=np.float32))
    return np.concatenate(out)


def add_shard(trained: Path, shard: Path, first_id: int, out: Path) -> int:
    """Add one `.npy` shard to a copy of the trained index, ids `first_id`.., and write it to `out`.

    Returns:
        The number of vectors added.
    """
    index = faiss.read_index(str(trained))
    vectors = np.ascontiguousarray(np.load(shard), dtype=np.float32)
    index.add_with_ids(vectors, np.arange(first_id, first_id + len(vectors), dtype=np.int64))
    faiss.write_index(index, str(out))
    return len(vectors)


def assemble(
    shards: Sequence[Path],
    out_dir: Path,
    plan: IvfPlan,
    map_fn: Callable[..., Iterable[int]] = map,
) -> Path:
    """Build a memory-mappable IVF index over `.npy` vector shards (row order = shard order).

    Args:
        shards: Vector files, shard k holding the rows after shard k-1.
        out_dir: Receives `vectors.index` and `lists.ivfdata` (plus the per-shard
            indexes, deleted once merged).
        plan: Lists, codec, training sample.
        map_fn: Runs `add_shard` over the shards; `map(f, *iterables)` semantics.

    Returns:
        The path of the merged index file, to open with `load_mmap`.
    """
    if not shards:
        raise ValueError("no vector shards to assemble")
    out_dir.mkdir(parents=True, exist_ok=True)
    trained = out_dir / TRAINED
    faiss.write_index(train(sample_rows(shards, plan.sample, plan.seed), plan), str(trained))
    sizes = [len(np.load(path, mmap_mode="r")) for path in shards]
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()
    parts = [out_dir / f"shard-{k:05d}.index" for k in range(len(shards))]
    added = list(map_fn(add_shard, [trained] * len(shards), list(shards), firsts, parts))
    if added != sizes:
        raise RuntimeError(f"shards added {added} vectors, expected {sizes}")
    merged = faiss.read_index(str(trained))
    merge_ondisk(merged, [str(p) for p in parts], str(out_dir / LISTS))
    faiss.write_index(merged, str(out_dir / MERGED))
    for path in [trained, *parts]:
        path.unlink()
    return out_dir / MERGED


def load_mmap(path: Path, probes: int = 16) -> faiss.Index:
    """Open a merged index with its inverted lists memory-mapped (found beside the index file)."""
    index = faiss.read_index(str(path), _FLAGS)
    faiss.extract_index_ivf(index).nprobe = probes
    return index
