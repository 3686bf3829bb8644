"""What a version folder holds: its file names and the records written into it.

An index folder holds versions side by side and a small pointer file:

    INDEX_DIR/CURRENT            name of the live version (replaced atomically)
    INDEX_DIR/.lock              held by the one process allowed to publish
    INDEX_DIR/v-<time>-<id>/     one complete version:
        manifest.json            format, model, dimensions, counts, settings, and every
                                 file's SHA-256, size and modification time
        passages.jsonl           line i = passage i (text + every location), read by row
        passage_rows.npy         byte offset of each line of passages.jsonl (index.store.passages)
        locations.npy            every location (source, document, start, row), sorted
        signatures.npy           passage i's duplicate-detection signature (ingest.dedup)
        vectors.faiss            row i = unit vector of passage i (inner product = cosine):
                                 exact (Flat) up to Settings.exact_search_limit passages,
                                 approximate (IVF, 8-bit scalar quantizer) above
        lists.ivfdata            approximate indexes only: the IVF lists, assembled from
                                 shards and merged on disk (index.retrievers.parts)
        vectors.npy              approximate indexes only: row i = passage i as float16,
                                 read by row, for exact re-scoring and reuse on update
        sentences.npy            float16 vectors of the answer candidates of every passage
        sentence_rows.npy        passage i's candidates are rows [rows[i], rows[i+1])
        keyword/                 BM25 index, row i = passage i, and each passage's terms
        documents.json           per-document info (source, text hash, passage count)
        vocabulary.tsv           the passages' words and their counts (index.store.vocabulary)
        texts.bin                every document's extracted text, row i = document i, read by row
        text_rows.npy            where each document's text begins in texts.bin (index.store.texts)
        shards/                  when built with --shards N: N serving shards (index.search.sharded)
        sources.json             per-file fingerprints (to tell what changed since the build)

The pointer and lock are `index.store.pointer`, the writer `index.store.writer`,
the reader `index.store.reader`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.records import DocumentInfo, Passage, Settings, Skipped
from index.retrievers.dense import DenseIndex
from index.retrievers.keyword import KeywordIndex

MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
PASSAGE_ROWS = "passage_rows.npy"
LOCATIONS = "locations.npy"
SIGNATURES = "signatures.npy"
SENTENCES = "sentences.npy"
SENTENCE_ROWS = "sentence_rows.npy"
KEYWORD = "keyword"
DOCUMENTS = "documents.json"
SOURCES = "sources.json"


@dataclass(frozen=True)
class SourceFile:
    """Fingerprint of one corpus file at build time."""

    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class SentenceVectors:
    """Vectors of each passage's answer candidates, pooled from the passage's own forward pass.

    Passage i's candidates (`index.search.sentences.answer_candidates`, in order) are
    rows `starts[i]:starts[i + 1]` of `vectors`. Search scores a passage by its
    best candidate too, and highlights the best one.
    """

    vectors: np.ndarray
    starts: np.ndarray

    def of(self, row: int) -> np.ndarray:
        return self.vectors[self.starts[row] : self.starts[row + 1]]

    def count(self, row: int) -> int:
        """How many candidates passage `row` has (without reading their vectors)."""
        return int(self.starts[row + 1] - self.starts[row])

    @staticmethod
    def starts_for(counts: Sequence[int]) -> np.ndarray:
        """The `starts` of passages holding `counts[i]` candidate vectors each."""
        return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)


@dataclass(frozen=True)
class Signatures:
    """Each passage's duplicate-detection signature, kept so an update compares only new passages with them.

    What a row holds is `ingest.dedup`'s business (a key of the normalised
    text and MinHash band hashes); `scheme` names its layout, and a scheme
    other than the one ingest computes means the rows are not used.
    """

    scheme: str
    rows: np.ndarray


def file_stat(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def file_sha256(path: Path) -> str:
    """Hash of a file's bytes (also used to fingerprint corpus files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class VersionContent:
    """What a version holds. Row i of `vectors`, `sentences`, `signatures` and `keyword` is `passages[i]`;
    `texts[i]` is the extracted text of `documents[i]`.

    Attributes:
        passages: The passages.
        vectors: Their unit-length float32 vectors.
        sentences: Vectors of every passage's answer candidates.
        documents: One entry per ingested document.
        sources: Fingerprint of every corpus file considered, by path relative to the corpus.
        texts: Each document's extracted text (served for citations).
        signatures: Each passage's duplicate-detection signature, stored for the next update.
        keyword: The passages' keyword index, when the caller built it already (else built on writing).
        skipped: Files that could not be ingested, with reasons.
    """

    passages: Sequence[Passage]
    vectors: np.ndarray
    sentences: SentenceVectors
    documents: list[DocumentInfo]
    sources: dict[str, SourceFile]
    texts: Sequence[str] = ()
    signatures: Signatures | None = None
    keyword: KeywordIndex | None = None
    skipped: tuple[Skipped, ...] = ()


@dataclass(frozen=True)
class BuildInfo:
    """How a version was built, recorded in its manifest.

    Attributes:
        model: Name of the embedder that made the vectors.
        settings: The chunking settings used.
        corpus: The corpus folder, for the record.
        shards: Serving shards to write beside the whole index (`index.store.shards`; 0: none).
        readers: The version of each reader the files were read with (by kind: "pdf", "md", ...).
    """

    model: str
    settings: Settings
    corpus: str
    shards: int = 0
    readers: dict[str, int] = field(default_factory=dict)


@dataclass(eq=False)
class Segment:
    """Passages and their retrieval data, row-aligned: row i of `dense`, `keyword`, `sentences` and
    `signatures` is `passages[i]`.

    The whole index (`index.store.reader.StoredIndex`) and one serving shard
    (`index.store.shards.ShardIndex`) are each a segment plus what they add.
    """

    passages: Sequence[Passage]
    dense: DenseIndex
    keyword: KeywordIndex | None
    sentences: SentenceVectors
    signatures: Signatures | None = None
