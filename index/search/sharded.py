"""Serving shards: a published index split by passage id, each part searched alone, the parts merged exactly.

(`index.retrievers.parts` is another thing: the pieces an approximate vector index is
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

Why the merged answer is the single-process answer, bit for bit:

- each shard proposes its own top `candidates` rows by passage cosine
  (FAISS) and by BM25, and reports both scores of every row it proposes;
  the whole collection's top `candidates` of each retriever are among the
  shards' (ties go to the lowest row everywhere: `search.top_rows`, `DenseIndex.search`);
- BM25 weights are the whole collection's (`KeywordIndex.subset`: document
  frequencies and average length over all passages), so shard scores compare;
- a passage's cosines are computed the same way wherever it is scored
  (`dense.row_dots`, which exact dense search ranks by too);
- the router then fuses the merged lists with the very function a single
  process uses (`search.fuse`), fetches the top hits' passages and
  answer-candidate cosines from their shards, and builds the answer with
  `search.build_answer`.

`ShardedSearcher` does this in one process (for tests and benchmarks);
`index.serve.ray_serve` does it over Ray Serve, with one deployment per shard.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from index.embed.registry import Embedder
from index.errors import IndexDamaged, ModelMismatch, rebuild_fix
from index.records import Answer, Passage, Settings, Verdict
from index.retrievers.dense import DenseIndex
from index.retrievers.keyword import KeywordIndex
from index.retrievers.parts import Map
from index.search.confidence import ConfidenceModel
from index.search.searcher import (
    Candidates,
    Ranking,
    SearchSettings,
    build_answer,
    candidate_cosines,
    clean_query,
    fuse,
    sentence_cosines,
    top_rows,
)
from index.store.reader import SentenceVectors, check_files, live_version, manifest_of

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
        parallel_map: Adds the lists of a shard's approximate index (see `DenseIndex.save`).

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


@dataclass(frozen=True)
class ShardCandidates:
    """What one shard proposes for a question, in the whole index's rows (plain arrays: they travel).

    Attributes:
        shard: Which shard.
        dense_rows / dense_scores: Its top rows by passage cosine, with FAISS's scores.
        keyword_rows / keyword_scores: Its top rows by BM25 (sharing a term with the question), best first.
        rows: Every row it proposes, with each one's `cosines`, `best_sentences` and `bm25`.
    """

    shard: int
    dense_rows: np.ndarray
    dense_scores: np.ndarray
    keyword_rows: np.ndarray
    keyword_scores: np.ndarray
    rows: np.ndarray
    cosines: np.ndarray
    best_sentences: np.ndarray
    bm25: np.ndarray


class ShardIndex:
    """One serving shard of a version, loaded and checked against the version's manifest."""

    def __init__(
        self,
        version: Path,
        shard: int,
        rows: np.ndarray,
        passages: list[Passage],
        dense: DenseIndex,
        keyword: KeywordIndex,
        sentences: SentenceVectors,
        model: str,
    ) -> None:
        self.version = version
        self.shard = shard
        self.rows = rows
        self.passages = passages
        self.dense = dense
        self.keyword = keyword
        self.sentences = sentences
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
            vectors = np.load(folder / SENTENCES, mmap_mode="r", allow_pickle=False)
            sentences = SentenceVectors(vectors, np.load(folder / SENTENCE_ROWS, allow_pickle=False))
            with open(folder / PASSAGES, encoding="utf-8") as lines:
                passages = [Passage.from_json(json.loads(line)) for line in lines]
            keyword = KeywordIndex.load(folder / KEYWORD, len(passages))
        except (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError) as exc:
            raise IndexDamaged(f"shard {shard} of index {version} cannot be read ({exc})", fix) from exc
        counts = (len(rows), len(passages), len(dense), len(sentences.starts) - 1, len(vectors))
        if counts != (part["passages"],) * 4 + (part["sentences"],):
            raise IndexDamaged(f"shard {shard} of index {version} is inconsistent: {counts}, listed {part}", fix)
        return cls(version, shard, rows, passages, dense, keyword, sentences, manifest.model)

    def candidates(self, query: str, vector: np.ndarray, depth: int, sources: frozenset[str] | None) -> ShardCandidates:
        """This shard's candidates for a cleaned question and its vector.

        Args:
            query: The cleaned question (for BM25).
            vector: Its vector.
            depth: How many each retriever proposes (`SearchSettings.candidates`).
            sources: When given, only passages found in these source files count.
        """
        allowed = self._allowed(sources)
        dense_local, faiss_scores = self.dense.search(vector, depth, allowed)
        bm25 = self.keyword.scores(query)
        if allowed is not None:
            mask = np.zeros(len(bm25), dtype=bool)
            mask[allowed] = True
            bm25 = np.where(mask, bm25, 0.0)
        keyword_local = top_rows(bm25, min(depth, int(np.count_nonzero(bm25 > 0))))
        local = np.array(list(dict.fromkeys(dense_local + keyword_local.tolist())), dtype=np.int64)
        cosines, best = candidate_cosines(self.dense.vectors(local), self.sentences, local, vector)
        return ShardCandidates(
            shard=self.shard,
            dense_rows=self.rows[np.asarray(dense_local, dtype=np.int64)],
            dense_scores=np.array([faiss_scores[row] for row in dense_local], dtype=np.float32),
            keyword_rows=self.rows[keyword_local],
            keyword_scores=bm25[keyword_local],
            rows=self.rows[local],
            cosines=cosines,
            best_sentences=best,
            bm25=bm25[local],
        )

    def fetch(self, rows: Sequence[int], vector: np.ndarray) -> list[tuple[Passage, np.ndarray]]:
        """The passages of these (whole-index) rows, each with its answer candidates' cosines with `vector`."""
        local = [self._local[int(row)] for row in rows]
        return [(self.passages[i], sentence_cosines(self.sentences.of(i), vector)) for i in local]

    def _allowed(self, sources: frozenset[str] | None) -> np.ndarray | None:
        if sources is None:
            return None
        rows = set()
        for source in sources:
            rows.update(self._rows_of_source.get(source, ()))
        return np.array(sorted(rows), dtype=np.int64)

    @cached_property
    def _rows_of_source(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for i, passage in enumerate(self.passages):
            for source in {loc.source for loc in passage.locations}:
                found.setdefault(source, []).append(i)
        return found


def merge(parts: Sequence[ShardCandidates], depth: int) -> tuple[Candidates, dict[int, int]]:
    """The whole collection's candidates from every shard's: each retriever's top `depth`, ties to the lowest row.

    Returns:
        The candidates to fuse, and the shard that holds each of their rows.
    """
    dense = _best(np.concatenate([p.dense_rows for p in parts]), np.concatenate([p.dense_scores for p in parts]), depth)
    keyword = _best(
        np.concatenate([p.keyword_rows for p in parts]), np.concatenate([p.keyword_scores for p in parts]), depth
    )
    scored = {
        int(row): (cos, best, bm25, p.shard)
        for p in parts
        for row, cos, best, bm25 in zip(p.rows, p.cosines, p.best_sentences, p.bm25)
    }
    rows = list(dict.fromkeys(dense + keyword))
    picked = [scored[row] for row in rows]
    candidates = Candidates(
        dense,
        keyword,
        np.array(rows, dtype=np.int64),
        np.array([s[0] for s in picked], dtype=np.float64),
        np.array([s[1] for s in picked], dtype=np.float64),
        np.array([s[2] for s in picked], dtype=parts[0].bm25.dtype if parts else np.float32),
    )
    return candidates, {row: s[3] for row, s in zip(rows, picked)}


def _best(rows: np.ndarray, scores: np.ndarray, depth: int) -> list[int]:
    order = np.lexsort((rows, -scores))[:depth]
    return [int(rows[i]) for i in order]


def rank_shards(parts: Sequence[ShardCandidates], settings: SearchSettings) -> tuple[Ranking, dict[int, int]]:
    """Merge the shards' candidates and fuse them as one process would; with each row's shard."""
    candidates, owner = merge(parts, settings.candidates)
    return fuse(candidates, settings), owner


def top_by_shard(ranking: Ranking, owner: Mapping[int, int], k: int) -> dict[int, list[int]]:
    """The top `k` rows of a ranking, grouped by the shard that holds them (to fetch their passages)."""
    grouped: dict[int, list[int]] = {}
    for row in ranking.rows[:k]:
        grouped.setdefault(owner[row], []).append(row)
    return grouped


class ShardedSearcher:
    """The shards of one version searched in this process: what a router does over servers, without them."""

    def __init__(
        self,
        shards: Sequence[ShardIndex],
        embedder: Embedder,
        settings: SearchSettings = SearchSettings(),
        confidence: ConfidenceModel | None = None,
    ) -> None:
        if shards and embedder.name != shards[0].model:
            raise ModelMismatch(
                f"index {shards[0].version.parent} was built with model {shards[0].model!r}, "
                f"but the embedder is {embedder.name!r}",
                rebuild_fix(shards[0].version.parent),
            )
        self.shards = list(shards)
        self.embedder = embedder
        self.settings = settings
        self.confidence = confidence or ConfidenceModel.bundled()

    @classmethod
    def load(cls, index_dir: Path, shards: int, embedder: Embedder, **kwargs) -> ShardedSearcher:
        """Every shard of the live version of `index_dir`."""
        version = live_version(index_dir)
        return cls([ShardIndex.load(version, s, shards) for s in range(shards)], embedder, **kwargs)

    def search(self, query: str, k: int = 5, sources: frozenset[str] | None = None) -> Answer:
        """As `Searcher.search`, over the shards."""
        query = clean_query(query)
        if not query or k < 1:
            return Answer(query, Verdict.NOT_ANSWERED, ())
        vector = self.embedder.encode([query])[0]
        parts = [shard.candidates(query, vector, self.settings.candidates, sources) for shard in self.shards]
        ranking, owner = rank_shards(parts, self.settings)
        passages, cosines = {}, {}
        for shard, rows in top_by_shard(ranking, owner, k).items():
            for row, (passage, sentence) in zip(rows, self.shards[shard].fetch(rows, vector)):
                passages[row], cosines[row] = passage, sentence
        return build_answer(query, ranking, k, passages, cosines, self.settings, self.confidence, sources)
