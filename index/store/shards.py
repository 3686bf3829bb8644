"""Serving-shard files: a published version split by passage id, written beside the whole index and loaded alone.

(`index.retrievers.parts` is another thing: the parts an approximate vector index is
assembled from. These shards are what separate servers load.)

`python -m ingest --shards N` publishes, beside the whole index, N shards in
the same version folder, listed by its one manifest (every file hashed), so
the shards of a version are always of one consistent build:

    shards/shards.json          N, and each shard's passages, sentences and vector index kind
    shards/<s>/rows.npy         the whole index's rows this shard holds, ascending (its row i is rows[i])
    shards/<s>/vectors.faiss    its own dense index (exact, or approximate past the exact-search limit)
    shards/<s>/sentences.npy    its passages' answer-candidate vectors (and sentence_rows.npy)
    shards/<s>/passages.jsonl   its passages, line i = its row i
    shards/<s>/keyword/         BM25 over its passages, weighted as in the whole collection

A passage belongs to shard `int(id, 16) % N`: its id is a hash of its text,
so shards come out even and a passage stays on its shard across updates.

Searching the shards and merging their answers is `index.search.sharded`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from index.errors import IndexDamaged, rebuild_fix
from index.records import Passage, Settings
from index.retrievers.dense import DenseIndex
from index.retrievers.keyword import KeywordIndex
from index.retrievers.parts import Map
from index.rowfile import open_rows
from index.store.reader import check_files, manifest_of
from index.store.version import Segment, SentenceVectors

SHARDS = "shards"
LISTING = "shards.json"
ROWS = "rows.npy"
PASSAGES = "passages.jsonl"
SENTENCES = "sentences.npy"
SENTENCE_ROWS = "sentence_rows.npy"
KEYWORD = "keyword"


def shard_of(passage_id: str, shards: int) -> int:
    """The shard a passage belongs to: its id (a hex content hash) modulo the shard count."""
    return int(passage_id, 16) % shards


def shard_folder(version: Path, shard: int) -> Path:
    return version / SHARDS / f"{shard:03d}"


def write_shards(
    folder: Path,
    passages: Sequence[Passage],
    vectors: np.ndarray,
    sentences: SentenceVectors,
    keyword: KeywordIndex,
    shards: int,
    settings: Settings,
    parallel_map: Map = map,
) -> None:
    """Write `shards` serving shards of a version into its folder (before its manifest is written).

    Args:
        folder: The version folder being written.
        passages: Its passages; `vectors`, `sentences` and `keyword` are row-aligned with them.
        vectors: Unit float32 passage vectors.
        sentences: The passages' answer-candidate vectors.
        keyword: BM25 over all passages, whose weights every shard keeps.
        shards: How many.
        settings: The exact-search limit decides each shard's dense index kind.
        parallel_map: Adds the parts of a shard's approximate index (see `DenseIndex.save`).

    Raises:
        ValueError: A shard would hold no passage (fewer passages than shards, or an unlucky split).
    """
    owner = np.array([shard_of(p.id, shards) for p in passages], dtype=np.int64)
    parts = []
    for shard in range(shards):
        rows = np.flatnonzero(owner == shard)
        if not len(rows):
            raise ValueError(
                f"shard {shard} of {shards} would hold no passage (the collection has {len(passages)}); "
                "build with fewer shards"
            )
        out = shard_folder(folder, shard)
        out.mkdir(parents=True)
        np.save(out / ROWS, rows, allow_pickle=False)
        kind = DenseIndex.kind_for(len(rows), settings.exact_search_limit)
        DenseIndex.save(out, np.ascontiguousarray(vectors[rows], dtype=np.float32), kind, parallel_map)
        counts = sentences.starts[rows + 1] - sentences.starts[rows]
        gathered = np.concatenate([np.arange(sentences.starts[r], sentences.starts[r + 1]) for r in rows])
        np.save(out / SENTENCES, np.asarray(sentences.vectors[gathered], dtype=np.float16), allow_pickle=False)
        np.save(out / SENTENCE_ROWS, SentenceVectors.starts_for(counts), allow_pickle=False)
        with open(out / PASSAGES, "w", encoding="utf-8") as lines:
            for row in rows:
                lines.write(json.dumps(passages[row].to_json(), ensure_ascii=False) + "\n")
        keyword.subset(rows).save(out / KEYWORD)
        parts.append({"passages": len(rows), "sentences": len(gathered), "vector_index": kind})
    listing = {"shards": shards, "parts": parts}
    (folder / SHARDS / LISTING).write_text(json.dumps(listing, indent=1), encoding="utf-8")


class ShardIndex(Segment):
    """One serving shard of a version: its passages and their retrieval data (a `Segment`), loaded and checked
    against the version's manifest; `rows[i]` is the whole index's row of its passage i."""

    def __init__(self, version: Path, shard: int, rows: np.ndarray, segment: Segment, model: str) -> None:
        super().__init__(**vars(segment))
        self.version = version
        self.shard = shard
        self.rows = rows
        self.model = model
        self._local = {int(row): i for i, row in enumerate(rows)}

    @classmethod
    def load(cls, version: Path, shard: int, shards: int) -> ShardIndex:
        """Load shard `shard` of the version folder `version`, built with `shards` shards.

        Raises:
            IndexDamaged: The version has no such shards, or a file of the shard is missing or altered.
        """
        manifest = manifest_of(version)
        fix = rebuild_fix(version.parent)
        if manifest.shards != shards:
            raise IndexDamaged(
                f"index {version} has {manifest.shards or 'no'} shards, not {shards}",
                f"{fix} --shards {shards}",
            )
        folder = shard_folder(version, shard)
        prefix = f"{folder.relative_to(version).as_posix()}/"
        check_files(version, manifest, [f"{SHARDS}/{LISTING}"] + [n for n in manifest.files if n.startswith(prefix)])
        try:
            part = json.loads((version / SHARDS / LISTING).read_text(encoding="utf-8"))["parts"][shard]
            rows = np.load(folder / ROWS, allow_pickle=False)
            dense = DenseIndex.load(folder, part["vector_index"])
            vectors = open_rows(folder / SENTENCES)
            sentences = SentenceVectors(vectors, np.load(folder / SENTENCE_ROWS, allow_pickle=False))
            with open(folder / PASSAGES, encoding="utf-8") as lines:
                passages = [Passage.from_json(json.loads(line)) for line in lines]
            keyword = KeywordIndex.load(folder / KEYWORD, len(passages))
        except (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError) as exc:
            raise IndexDamaged(f"shard {shard} of index {version} cannot be read ({exc})", fix) from exc
        counts = (len(rows), len(passages), len(dense), len(sentences.starts) - 1, len(vectors))
        if counts != (part["passages"],) * 4 + (part["sentences"],):
            raise IndexDamaged(f"shard {shard} of index {version} is inconsistent: {counts}, listed {part}", fix)
        return cls(version, shard, rows, Segment(passages, dense, keyword, sentences), manifest.model)

    def allowed_rows(self, sources: frozenset[str] | None) -> np.ndarray | None:
        if sources is None:
            return None
        rows = set()
        for source in sources:
            rows.update(self._rows_of_source.get(source, ()))
        return np.array(sorted(rows), dtype=np.int64)

    def local_rows(self, rows: Sequence[int]) -> list[int]:
        """This shard's own rows of these whole-index rows."""
        return [self._local[int(row)] for row in rows]

    @cached_property
    def _rows_of_source(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for i, passage in enumerate(self.passages):
            for source in {loc.source for loc in passage.locations}:
                found.setdefault(source, []).append(i)
        return found
