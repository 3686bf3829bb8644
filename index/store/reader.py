"""Loading a version: the manifest and every file checked, the large files opened to be read by row.

Loading costs the same for ten passages or a million: it checks each file's
size and modification time against the manifest (hashing only a file whose
time changed while its size did not, as a copied folder's files do), opens
the large files (the IVF lists memory-mapped as FAISS's on-disk inverted
lists; the vector copy, the answer-sentence vectors, the BM25 postings,
passages.jsonl and texts.bin read by row with `pread` when they are large,
`index.rowfile`, so resident memory does not grow with the questions asked;
the location table memory-mapped), and reads nothing else until it is asked
for. `verify` hashes every file (`python -m index verify`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import numpy as np

from index.errors import (
    IndexDamaged,
    ModelMismatch,
    rebuild_fix,
)
from index.records import FORMAT_VERSION, DocumentInfo, Manifest
from index.retrievers.dense import DenseIndex
from index.retrievers.keyword import KeywordIndex
from index.rowfile import open_rows
from index.store.passages import LocationTable, PassageFile
from index.store.pointer import current_version, hold_for_reading, live_version
from index.store.texts import DocumentTexts
from index.store.version import (
    DOCUMENTS,
    KEYWORD,
    LOCATIONS,
    MANIFEST,
    PASSAGE_ROWS,
    PASSAGES,
    SENTENCE_ROWS,
    SENTENCES,
    SIGNATURES,
    SOURCES,
    Segment,
    SentenceVectors,
    Signatures,
    SourceFile,
    file_sha256,
    file_stat,
)
from index.store.vocabulary import VOCABULARY, count_words, read_vocabulary


@dataclass(frozen=True)
class Opened:
    """What a version keeps open from load: its documents and sources (read on first use, or given as
    records for an index assembled in memory), its vocabulary, and the shared lock that keeps its folder."""

    documents: list[DocumentInfo] | BinaryIO | None = None
    sources: dict[str, SourceFile] | BinaryIO | None = None
    vocabulary: BinaryIO | None = None
    reading: BinaryIO | None = None


class StoredIndex(Segment):
    """A loaded index version: its passages and their retrieval data (a `Segment`), and what the version adds.

    `passages` is read by row from disk (`index.store.passages.PassageFile`);
    `documents` and `sources` are read on first use, from files opened at
    load (so a version replaced and deleted meanwhile still answers).
    """

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        segment: Segment,
        locations: LocationTable,
        *,
        texts: DocumentTexts | None = None,
        opened: Opened = Opened(),
    ) -> None:
        super().__init__(**vars(segment))
        self._reading = opened.reading  # the shared lock that keeps the folder while this object lives
        self.path = path
        self.manifest = manifest
        self.locations = locations
        self._documents = opened.documents
        self._sources = opened.sources
        self.texts = texts  # every version has them; None only for an index assembled in memory
        self._vocabulary = opened.vocabulary

    @cached_property
    def vocabulary(self) -> dict[str, int]:
        """The collection's words and their counts (`index.store.vocabulary`; for a version written before
        they were stored, counted from its documents' texts on first use)."""
        if self._vocabulary is None:
            texts = self.texts
            return dict(count_words(texts.text(row) for row in range(len(texts)))) if texts is not None else {}
        try:
            self._vocabulary.seek(0)
            return read_vocabulary(self._vocabulary.read().decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexDamaged(
                f"index file {self.path / VOCABULARY} cannot be read ({exc})", rebuild_fix(self.path.parent)
            ) from exc

    @cached_property
    def documents(self) -> list[DocumentInfo]:
        """One entry per ingested document."""
        data = self._documents
        if data is None:
            return []
        if isinstance(data, list):
            return data
        entries = _read_open_json(data, self.path / DOCUMENTS)
        self._described = all("tags" in d for d in entries)
        return [DocumentInfo(**d) for d in entries]

    @property
    def described(self) -> bool:
        """Whether the version keeps its documents' titles, tags and pages (a version written before they
        were kept reads back with none: filters by title or tag ask for a rebuild)."""
        _ = self.documents  # reading them tells
        return getattr(self, "_described", True)

    @cached_property
    def sources(self) -> dict[str, SourceFile]:
        """The fingerprint of every corpus file at build time, by path relative to the corpus."""
        data = self._sources
        if data is None:
            return {}
        if isinstance(data, dict):
            return data
        return {name: SourceFile(**f) for name, f in _read_open_json(data, self.path / SOURCES).items()}


def load(index_dir: Path, model: str | None = None) -> StoredIndex:
    """Load the live version of an index, checking each file's size and modification time.

    Args:
        index_dir: The index folder.
        model: When given, the embedder the caller will query with; an index
            built with another model is refused.

    Raises:
        IndexNotFound: Nothing was published there.
        IndexDamaged: A file is missing, unreadable, edited, or of another format version.
        ModelMismatch: `model` is given and the index was built with another.
    """
    version = live_version(index_dir)
    try:
        stored = load_version(version)
    except IndexDamaged:
        if current_version(index_dir) == version:
            raise
        stored = load_version(live_version(index_dir))  # a publish switched versions while we read
    if model is not None and stored.manifest.model != model:
        raise ModelMismatch(
            f"index {index_dir} was built with model {stored.manifest.model!r}, but this program embeds "
            f"questions with {model!r}",
            rebuild_fix(index_dir),
        )
    return stored


# One load at a time per process. numpy reads every .npy header with
# ast.literal_eval, and CPython 3.11's AST constructor is not thread-safe: two
# threads loading at once (app sessions, a build publishing beside readers)
# raised "SystemError: AST constructor recursion depth mismatch" in
# tests/test_concurrency.py. Loading only opens files, so the wait is short.
_LOADING = threading.Lock()


def load_version(folder: Path) -> StoredIndex:
    """Load one version folder: the manifest, each file's size and time, and the large files opened.

    A file whose size differs from the manifest's is damaged; one whose
    modification time differs (an edit, or a copy of the folder) is hashed
    and refused if its content changed. The cost does not grow with the
    collection: nothing is read that a question does not need.
    """
    with _LOADING:
        return _load_version(folder)


def check_files(folder: Path, manifest: Manifest, names: Iterable[str] | None = None) -> None:
    """Check files of a version folder (default: all) against the manifest's sizes and times, as loading does.

    Raises:
        IndexDamaged: A file is missing, unreadable, or edited.
    """
    for name in manifest.files if names is None else names:
        expected = manifest.files.get(name)
        path = folder / name
        try:
            now = file_stat(path)
        except FileNotFoundError:
            raise IndexDamaged(f"index file {path} is missing", rebuild_fix(folder.parent)) from None
        except OSError as exc:
            raise IndexDamaged(f"index file {path} cannot be read ({exc})", rebuild_fix(folder.parent)) from None
        recorded = manifest.file_stats.get(name)
        if (
            expected is None
            or recorded is None
            or now[0] != recorded[0]
            or (now[1] != recorded[1] and file_sha256(path) != expected)
        ):
            raise _edited(path, folder)


def _load_version(folder: Path) -> StoredIndex:
    manifest = read_manifest(folder)
    try:
        reading = hold_for_reading(folder)
    except OSError as exc:
        raise IndexDamaged(f"index {folder} cannot be read ({exc})", rebuild_fix(folder.parent)) from exc
    check_files(folder, manifest)
    try:
        dense = DenseIndex.load(folder, manifest.vector_index)
        sentences = _read_sentences(folder, manifest)
        passages = PassageFile(folder / PASSAGES, open_rows(folder / PASSAGE_ROWS))
        locations = LocationTable(np.load(folder / LOCATIONS, allow_pickle=False, mmap_mode="r"))
        keyword = KeywordIndex.load(folder / KEYWORD, len(passages))
        signatures = None
        if manifest.signatures:
            signatures = Signatures(
                manifest.signatures, np.load(folder / SIGNATURES, allow_pickle=False, mmap_mode="r")
            )
        documents, sources = open(folder / DOCUMENTS, "rb"), open(folder / SOURCES, "rb")
        texts = DocumentTexts.load(folder)
        vocabulary = open(folder / VOCABULARY, "rb") if VOCABULARY in manifest.files else None
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexDamaged(f"index {folder} cannot be read ({exc})", rebuild_fix(folder.parent)) from exc
    counts = {
        "passages": len(passages),
        "vectors": len(dense),
        "vector rows": dense.rows,
        "sentence rows": len(sentences.starts) - 1,
        "locations": len(locations),
    }
    expected = {k: manifest.passages for k in ("passages", "vectors", "vector rows", "sentence rows")}
    expected["locations"] = manifest.locations
    if signatures is not None:
        counts["signatures"], expected["signatures"] = len(signatures.rows), manifest.passages
    counts["texts"], expected["texts"] = len(texts), manifest.documents
    if counts != expected or dense.dimensions != manifest.dimensions:
        raise IndexDamaged(
            f"index {folder} is inconsistent: found {counts} with {dense.dimensions} dimensions, manifest says "
            f"{expected} with {manifest.dimensions}",
            rebuild_fix(folder.parent),
        )
    segment = Segment(passages, dense, keyword, sentences, signatures)
    return StoredIndex(
        folder, manifest, segment, locations, texts=texts, opened=Opened(documents, sources, vocabulary, reading)
    )


def verify(index_dir: Path) -> StoredIndex:
    """Load the live version and check every byte: each file against its hash, and every count.

    What `load` leaves out, so that loading stays fast at any size (`python -m index verify`).

    Raises:
        IndexNotFound: Nothing was published there.
        IndexDamaged: A file is missing, edited or damaged, or the counts disagree.
    """
    stored = load(index_dir)
    folder = stored.path
    for name, expected in stored.manifest.files.items():
        if file_sha256(folder / name) != expected:
            raise _edited(folder / name, folder)
    try:
        documents = len(stored.documents)
        sources = len(stored.sources)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexDamaged(f"index {folder} cannot be read ({exc})", rebuild_fix(folder.parent)) from exc
    if documents != stored.manifest.documents:
        raise IndexDamaged(
            f"index {folder} is inconsistent: {documents} documents, manifest says {stored.manifest.documents}",
            rebuild_fix(folder.parent),
        )
    del sources
    return stored


def _edited(path: Path, folder: Path) -> IndexDamaged:
    return IndexDamaged(
        f"index file {path} does not match its manifest (damaged or edited)", rebuild_fix(folder.parent)
    )


def _read_open_json(handle: BinaryIO, path: Path):
    try:
        handle.seek(0)
        return json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexDamaged(f"index file {path} cannot be read ({exc})", rebuild_fix(path.parent.parent)) from exc


def _read_sentences(folder: Path, manifest: Manifest) -> SentenceVectors:
    vectors = open_rows(folder / SENTENCES)
    starts = np.load(folder / SENTENCE_ROWS, allow_pickle=False)
    if len(vectors) != manifest.sentences or (len(starts) and starts[-1] != len(vectors)):
        raise ValueError(f"{len(vectors)} sentence vectors, manifest says {manifest.sentences}")
    return SentenceVectors(vectors, starts)


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    try:
        data = _read_json(path)
    except FileNotFoundError:
        raise IndexDamaged(f"index manifest {path} is missing", rebuild_fix(folder.parent)) from None
    except ValueError as exc:
        raise IndexDamaged(f"index manifest {path} is not valid JSON ({exc})", rebuild_fix(folder.parent)) from None
    version = data.get("format_version") if isinstance(data, dict) else None
    if version != FORMAT_VERSION:
        raise IndexDamaged(
            f"index {folder} has format version {version!r}, this program reads version {FORMAT_VERSION}",
            rebuild_fix(folder.parent),
        )
    try:
        return Manifest.from_json(data)
    except (TypeError, ValueError) as exc:
        raise IndexDamaged(f"index manifest {path} is malformed ({exc})", rebuild_fix(folder.parent)) from None


def _read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def info_json(stored: StoredIndex) -> dict:
    """What `python -m index info --json` prints and GET /info returns: the version folder and its manifest."""
    return {"index": str(stored.path), **stored.manifest.to_json()}


def manifest_of(folder: Path) -> Manifest:
    """The manifest of a version folder, checked for this program's format.

    Raises:
        IndexDamaged: It is missing, not JSON, malformed, or of another format version.
    """
    return read_manifest(folder)
