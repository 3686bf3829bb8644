"""The on-disk index: format, atomic publish, locking, load and verify.

An index folder holds versions side by side and a small pointer file:

    INDEX_DIR/CURRENT            name of the live version (replaced atomically)
    INDEX_DIR/.lock              held by the one process allowed to publish
    INDEX_DIR/v-<time>-<id>/     one complete version:
        manifest.json            format, model, dimensions, counts, settings, and every
                                 file's SHA-256, size and modification time
        passages.jsonl           line i = passage i (text + every location), memory-mapped
        passage_rows.npy         byte offset of each line of passages.jsonl (index.store.passages)
        locations.npy            every location (source, document, start, row), sorted
        signatures.npy           passage i's duplicate-detection signature (ingest.dedup)
        vectors.faiss            row i = unit vector of passage i (inner product = cosine):
                                 exact (Flat) up to Settings.exact_search_limit passages,
                                 approximate (IVF, 8-bit scalar quantizer) above
        lists.ivfdata            approximate indexes only: the IVF lists, assembled from
                                 shards and merged on disk (index.retrievers.parts)
        vectors.npy              approximate indexes only: row i = passage i as float16,
                                 memory-mapped, for exact re-scoring and reuse on update
        sentences.npy            float16 vectors of the answer candidates of every passage
        sentence_rows.npy        passage i's candidates are rows [rows[i], rows[i+1])
        keyword/                 BM25 index, row i = passage i, and each passage's terms
        documents.json           per-document info (source, text hash, passage count)
        texts.bin                every document's extracted text, row i = document i, memory-mapped
        text_rows.npy            where each document's text begins in texts.bin (index.store.texts)
        shards/                  when built with --shards N: N serving shards (index.search.sharded)
        sources.json             per-file fingerprints (to tell what changed since the build)

A new version is written into a hidden temporary folder, hashed as it is
written, flushed, checked by loading it back, renamed into place, and only
then does CURRENT switch to it. A crash at any moment leaves CURRENT naming a
complete, checked version. A file whose content is the previous version's
(the same passages, the same vectors) is hard-linked from it instead of
written again.

Loading costs the same for ten passages or a million: it checks each file's
size and modification time against the manifest (hashing only a file whose
time changed while its size did not, as a copied folder's files do), opens
the large files memory-mapped (the IVF lists as FAISS's on-disk inverted
lists, the .npy files and passages.jsonl), and reads nothing else until it
is asked for. `verify` hashes every file (`python -m index verify`).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import numpy as np

from index.errors import (
    IndexBusy,
    IndexDamaged,
    IndexNotFound,
    IndexWriteFailed,
    ModelMismatch,
    PointerDamaged,
    build_fix,
    rebuild_fix,
)
from index.records import FORMAT_VERSION, DocumentInfo, Manifest, Passage, Settings, Skipped
from index.retrievers.dense import DenseIndex
from index.retrievers.keyword import KeywordIndex
from index.retrievers.parts import Map
from index.store.passages import LocationTable, PassageFile, location_table, passage_line
from index.store.texts import TEXT_ROWS, TEXTS, DocumentTexts, write_texts

POINTER = "CURRENT"
LOCK = ".lock"
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
# What CURRENT may name: a version folder as publish() names it, one path component.
_VERSION_NAME = re.compile(r"v-[A-Za-z0-9_.-]+")
_MAX_POINTER_BYTES = 255


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


class StoredIndex:
    """A loaded index version: row i of `dense`, `keyword`, `sentences` and `signatures` is `passages[i]`.

    `passages` is read by row from disk (`index.store.passages.PassageFile`);
    `documents` and `sources` are read on first use, from files opened at
    load (so a version replaced and deleted meanwhile still answers).
    """

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        passages: Sequence[Passage],
        dense: DenseIndex,
        keyword: KeywordIndex | None,
        sentences: SentenceVectors,
        locations: LocationTable,
        signatures: Signatures | None = None,
        documents: list[DocumentInfo] | BinaryIO | None = None,
        sources: dict[str, SourceFile] | BinaryIO | None = None,
        texts: DocumentTexts | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.passages = passages
        self.dense = dense
        self.keyword = keyword
        self.sentences = sentences
        self.locations = locations
        self.signatures = signatures
        self._documents = documents
        self._sources = sources
        self.texts = texts  # every version has them; None only for an index assembled in memory

    @cached_property
    def documents(self) -> list[DocumentInfo]:
        """One entry per ingested document."""
        data = self._documents
        if data is None:
            return []
        if isinstance(data, list):
            return data
        return [DocumentInfo(**d) for d in _read_open_json(data, self.path / DOCUMENTS)]

    @cached_property
    def sources(self) -> dict[str, SourceFile]:
        """The fingerprint of every corpus file at build time, by path relative to the corpus."""
        data = self._sources
        if data is None:
            return {}
        if isinstance(data, dict):
            return data
        return {name: SourceFile(**f) for name, f in _read_open_json(data, self.path / SOURCES).items()}


def current_version(index_dir: Path) -> Path | None:
    """The live version folder, or None when nothing has been published.

    Raises:
        PointerDamaged: CURRENT cannot be read, is not text, or does not name a
            version folder (`v-...`) directly inside `index_dir`.
    """
    pointer = index_dir / POINTER
    try:
        with open(pointer, "rb") as handle:
            data = handle.read(_MAX_POINTER_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PointerDamaged(
            f"index pointer {pointer} cannot be read ({exc.strerror or exc})", rebuild_fix(index_dir)
        ) from None
    try:
        name = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise PointerDamaged(
            f"index pointer {pointer} is not text (it should name a version folder)", rebuild_fix(index_dir)
        ) from None
    if not name:
        raise PointerDamaged(f"index pointer {pointer} is empty", rebuild_fix(index_dir))
    # One folder name, never a path: whatever CURRENT holds, nothing outside the index folder is read.
    if len(data) > _MAX_POINTER_BYTES or not _VERSION_NAME.fullmatch(name):
        shown = name if len(name) <= 60 else name[:60] + "..."
        raise PointerDamaged(
            f"index pointer {pointer} names {shown!r}, which is not a version folder of {index_dir}",
            rebuild_fix(index_dir),
        )
    return index_dir / name


def live_version(index_dir: Path) -> Path:
    """The live version folder.

    Raises:
        IndexNotFound: Nothing has been published in `index_dir`.
    """
    version = current_version(index_dir)
    if version is None:
        raise IndexNotFound(f"no index found in {index_dir}", build_fix(index_dir))
    return version


@contextmanager
def publish_lock(index_dir: Path) -> Iterator[None]:
    """Hold the folder's publish lock, or raise IndexBusy at once if another process has it."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / LOCK, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise IndexBusy(
                f"{index_dir} is being updated by {holder}", "wait for it to finish and run again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def publish(
    index_dir: Path,
    *,
    model: str,
    passages: Sequence[Passage],
    vectors: np.ndarray,
    documents: list[DocumentInfo],
    sources: dict[str, SourceFile],
    settings: Settings,
    corpus: str,
    sentences: SentenceVectors,
    skipped: tuple[Skipped, ...] = (),
    parallel_map: Map = map,
    signatures: Signatures | None = None,
    previous: StoredIndex | None = None,
    previous_rows: Sequence[int | None] | None = None,
    keyword: KeywordIndex | None = None,
    timings: Callable[[str, float], None] | None = None,
    texts: Sequence[str] = (),
    shards: int = 0,
) -> StoredIndex:
    """Write a new version and make it live atomically. Caller holds `publish_lock`.

    Args:
        index_dir: The index folder (created if needed).
        model: Name of the embedder that made `vectors`.
        passages: Passages, row i matching `vectors[i]`.
        vectors: Unit-length float32 vectors.
        documents: One entry per ingested document.
        sources: Fingerprint of every corpus file considered.
        settings: The chunking settings used.
        corpus: The corpus folder, for the record.
        skipped: Files that could not be ingested, with reasons.
        sentences: Vectors of every passage's answer candidates.
        parallel_map: Adds the shards of an approximate index (see `DenseIndex.save`).
        signatures: Each passage's duplicate-detection signature, stored for the next update.
        previous: The live version this one updates: files whose content would be the
            same are hard-linked from it, and its passages' keyword terms are reused.
        previous_rows: With `previous`: the row of each passage in it, or None for a new passage.
        keyword: The passages' keyword index, when the caller built it already.
        timings: Called as `timings(step, seconds)` for the steps "write" and "verify".
        texts: Each document's extracted text, row i for `documents[i]` (served for citations).
        shards: Serving shards to write beside the whole index (`index.search.sharded`; 0: none).

    Returns:
        The published index, loaded back and checked.
    """
    if not passages:
        raise ValueError("no passages to index")
    if vectors.ndim != 2 or len(passages) != len(vectors):
        raise ValueError(f"{len(passages)} passages but vectors of shape {vectors.shape}")
    if len(sentences.starts) != len(passages) + 1:
        raise ValueError(f"{len(passages)} passages but sentence rows for {len(sentences.starts) - 1}")
    if signatures is not None and len(signatures.rows) != len(passages):
        raise ValueError(f"{len(passages)} passages but {len(signatures.rows)} signatures")
    if previous is not None and (previous_rows is None or len(previous_rows) != len(passages)):
        raise ValueError("previous_rows must give the previous row (or None) of every passage")
    if len(texts) != len(documents):
        raise ValueError(f"{len(documents)} documents but {len(texts)} texts")
    _remove_leftovers(index_dir)
    staging = index_dir / f".tmp-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True)
        began = time.perf_counter()
        version = _Version(staging, previous, previous_rows)
        version.write(
            model,
            passages,
            vectors,
            documents,
            sources,
            settings,
            corpus,
            skipped,
            sentences,
            signatures,
            keyword,
            parallel_map,
            texts,
            shards,
        )
        written = time.perf_counter()
        stored = load_version(staging)  # refuse to publish what we could not read back
        if timings is not None:
            timings("write", written - began)
            timings("verify", time.perf_counter() - written)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        final = index_dir / f"v-{stamp}-{staging.name[5:]}"
        staging.rename(final)  # open files and memory maps follow the rename
        _fsync(index_dir)  # the rename is on disk before CURRENT may name it
        stored.path = final
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError | RuntimeError):  # a full disk: FAISS raises RuntimeError, numpy and open OSError
            raise _not_written(index_dir, exc) from exc
        raise
    try:
        previous_version = current_version(index_dir)
    except PointerDamaged:  # the build replaces it; no version is known to be in use
        previous_version = None
    try:
        _switch_pointer(index_dir, final.name)
    except OSError as exc:
        shutil.rmtree(final, ignore_errors=True)  # CURRENT was not replaced: nothing names it
        raise _not_written(index_dir, exc) from exc
    # The version just replaced stays one more round: a reader that read the old
    # pointer a moment ago can still load it.
    _remove_old_versions(index_dir, keep={final.name} | ({previous_version.name} if previous_version else set()))
    return stored


class _Version:
    """Writes one version folder: each file hashed as it is written, or hard-linked from the previous version."""

    def __init__(self, folder: Path, previous: StoredIndex | None, previous_rows: Sequence[int | None] | None) -> None:
        self.folder = folder
        self.previous = previous
        self.previous_rows = previous_rows
        self.hashes: dict[str, str] = {}

    def write(
        self,
        model,
        passages,
        vectors,
        documents,
        sources,
        settings,
        corpus,
        skipped,
        sentences,
        signatures,
        keyword,
        parallel_map,
        texts=(),
        shards=0,
    ) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        kind = DenseIndex.kind_for(len(vectors), settings.exact_search_limit)
        same_texts = self._same_texts(len(passages))
        # The same passage texts in the same rows: the keyword index, and (when every vector is the
        # previous one) the vector files, are the previous version's byte for byte.
        same_vectors = (
            same_texts
            and self.previous.manifest.vector_index == kind
            and np.array_equal(self.previous.dense.vectors(), vectors)
            and np.array_equal(self.previous.sentences.vectors, np.asarray(sentences.vectors, dtype=np.float16))
        )
        if not (same_vectors and self._link(*DenseIndex.files(kind), SENTENCES, SENTENCE_ROWS)):
            DenseIndex.save(self.folder, vectors, kind, parallel_map)
            self._hash(*DenseIndex.files(kind))
            self._save_npy(SENTENCES, np.asarray(sentences.vectors, dtype=np.float16))
            self._save_npy(SENTENCE_ROWS, np.asarray(sentences.starts, dtype=np.int64))
        lines = [passage_line(p) for p in passages]
        same_lines = same_texts and all(line == self.previous.passages.line(row) for row, line in enumerate(lines))
        if not (same_lines and self._link(PASSAGES, PASSAGE_ROWS, LOCATIONS)):
            self._write_passages(lines)
            self._save_npy(LOCATIONS, location_table(passages))
        keyword_files = self._keyword_files() if same_texts else []
        if not (keyword_files and self._link(*keyword_files)):
            if keyword is None:
                reuse = None
                if self.previous is not None and self.previous.keyword is not None:
                    reuse = (self.previous.keyword, self.previous_rows)
                keyword = KeywordIndex.build([p.text for p in passages], reuse=reuse)
            keyword.save(self.folder / KEYWORD)
            self._hash(*self._files_under(KEYWORD))
        if signatures is not None:
            same = same_texts and self.previous.manifest.signatures == signatures.scheme
            if not (same and self._link(SIGNATURES)):
                self._save_npy(SIGNATURES, np.asarray(signatures.rows))
        self._save_json(DOCUMENTS, [dict(vars(d)) for d in documents])
        self._save_json(SOURCES, {name: dict(vars(f)) for name, f in sorted(sources.items())})
        write_texts(self.folder, texts)
        self._hash(TEXTS, TEXT_ROWS)
        if shards:
            from index.search.sharded import (  # sharding searches shards, and search reads this module
                SHARDS,
                write_shards,
            )

            if keyword is None:  # linked from the previous version, whose passages these are, row for row
                keyword = self.previous.keyword
            write_shards(self.folder, passages, vectors, sentences, keyword, shards, settings, parallel_map)
            self._hash(*self._files_under(SHARDS))
        # Files first, then the folders that name them, so a power cut cannot keep a name without its data.
        for path in sorted(self.folder.rglob("*"), key=lambda p: (p.is_dir(), -len(p.parts))):
            _fsync(path)
        stats = {name: _stat(self.folder / name) for name in sorted(self.hashes)}
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            model=model,
            dimensions=vectors.shape[1],
            documents=len(documents),
            passages=len(passages),
            locations=sum(len(p.locations) for p in passages),
            settings=settings,
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            corpus=corpus,
            files=dict(sorted(self.hashes.items())),
            file_stats=stats,
            skipped=tuple(skipped),
            vector_index=kind,
            sentences=len(sentences.vectors),
            signatures=signatures.scheme if signatures is not None else "",
            shards=shards,
        )
        path = self.folder / MANIFEST
        path.write_text(json.dumps(manifest.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
        _fsync(path)
        _fsync(self.folder)

    def _same_texts(self, count: int) -> bool:
        rows = self.previous_rows
        return (
            self.previous is not None
            and rows is not None
            and count == len(self.previous.passages)
            and all(row == i for i, row in enumerate(rows))
        )

    def _keyword_files(self) -> list[str]:
        return [name for name in self.previous.manifest.files if name.startswith(f"{KEYWORD}/")]

    def _link(self, *names: str) -> bool:
        """Hard-link these files from the previous version (keeping their recorded hashes); False if any cannot be."""
        source = self.previous.path
        if not all(name in self.previous.manifest.files and (source / name).is_file() for name in names):
            return False
        try:
            for name in names:
                (self.folder / name).parent.mkdir(parents=True, exist_ok=True)
                os.link(source / name, self.folder / name)
                self.hashes[name] = self.previous.manifest.files[name]
        except OSError:  # another file system, or links not allowed: write them instead
            for name in names:
                (self.folder / name).unlink(missing_ok=True)
                self.hashes.pop(name, None)
            return False
        return True

    def _files_under(self, folder: str) -> list[str]:
        return [p.relative_to(self.folder).as_posix() for p in sorted((self.folder / folder).rglob("*")) if p.is_file()]

    def _hash(self, *names: str) -> None:
        """Hash files that a library wrote (FAISS, bm25s): read once, here."""
        for name in names:
            if (self.folder / name).is_file():
                self.hashes[name] = file_sha256(self.folder / name)

    def _save_npy(self, name: str, array: np.ndarray) -> None:
        with open(self.folder / name, "wb") as handle:
            out = _HashingWriter(handle)
            np.save(out, array, allow_pickle=False)
        self.hashes[name] = out.hexdigest()

    def _save_json(self, name: str, data) -> None:
        self._write_bytes(name, json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8"))

    def _write_bytes(self, name: str, data: bytes) -> None:
        with open(self.folder / name, "wb") as handle:
            handle.write(data)
        self.hashes[name] = hashlib.sha256(data).hexdigest()

    def _write_passages(self, lines: list[bytes]) -> None:
        offsets = np.zeros(len(lines) + 1, dtype=np.int64)
        np.cumsum([len(line) for line in lines], out=offsets[1:])
        self._write_bytes(PASSAGES, b"".join(lines))
        self._save_npy(PASSAGE_ROWS, offsets)


class _HashingWriter:
    """A binary file that hashes what is written to it (np.save writes through `write`)."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()

    def write(self, data) -> int:
        self._digest.update(data)
        return self._handle.write(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


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
# tests/test_concurrency.py. Loading memory-maps files, so the wait is short.
_LOADING = threading.Lock()


def load_version(folder: Path) -> StoredIndex:
    """Load one version folder: the manifest, each file's size and time, and the memory-mapped files.

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
            now = _stat(path)
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
    manifest = _read_manifest(folder)
    check_files(folder, manifest)
    try:
        dense = DenseIndex.load(folder, manifest.vector_index)
        sentences = _read_sentences(folder, manifest)
        passages = PassageFile(folder / PASSAGES, np.load(folder / PASSAGE_ROWS, allow_pickle=False, mmap_mode="r"))
        locations = LocationTable(np.load(folder / LOCATIONS, allow_pickle=False, mmap_mode="r"))
        keyword = KeywordIndex.load(folder / KEYWORD, len(passages))
        signatures = None
        if manifest.signatures:
            signatures = Signatures(
                manifest.signatures, np.load(folder / SIGNATURES, allow_pickle=False, mmap_mode="r")
            )
        documents, sources = open(folder / DOCUMENTS, "rb"), open(folder / SOURCES, "rb")
        texts = DocumentTexts.load(folder)
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
    return StoredIndex(
        folder, manifest, passages, dense, keyword, sentences, locations, signatures, documents, sources, texts
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


def _stat(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _read_open_json(handle: BinaryIO, path: Path):
    try:
        handle.seek(0)
        return json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexDamaged(f"index file {path} cannot be read ({exc})", rebuild_fix(path.parent.parent)) from exc


def _read_sentences(folder: Path, manifest: Manifest) -> SentenceVectors:
    vectors = np.load(folder / SENTENCES, mmap_mode="r", allow_pickle=False)
    starts = np.load(folder / SENTENCE_ROWS, allow_pickle=False)
    if len(vectors) != manifest.sentences or (len(starts) and starts[-1] != len(vectors)):
        raise ValueError(f"{len(vectors)} sentence vectors, manifest says {manifest.sentences}")
    return SentenceVectors(vectors, starts)


def _read_manifest(folder: Path) -> Manifest:
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


def _switch_pointer(index_dir: Path, name: str) -> None:
    temporary = index_dir / f".{POINTER}.{uuid.uuid4().hex[:8]}"
    try:
        temporary.write_text(name + "\n", encoding="utf-8")
        _fsync(temporary)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, index_dir / POINTER)
    _fsync(index_dir)


def _not_written(index_dir: Path, error: OSError | RuntimeError) -> IndexWriteFailed:
    """What to say when a new version cannot be written: nothing changed, and what to free or fix."""
    full = getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error)
    if full:
        problem, fix = "no space left on device", f"free space on the disk holding {index_dir}"
        try:
            fix += f" ({shutil.disk_usage(index_dir).free / 2**20:.1f} MB free now)"
        except OSError:
            pass
    else:
        problem = (error.strerror if isinstance(error, OSError) else None) or str(error)
        fix = f"check that {index_dir} is writable and has free space"
    return IndexWriteFailed(
        f"cannot write a new version of the index in {index_dir}: {problem}; the index in use is unchanged",
        fix + ", then run again",
    )


def _remove_old_versions(index_dir: Path, keep: set[str]) -> None:
    """Delete superseded versions. Readers hold their version in memory, so this is safe."""
    for path in index_dir.glob("v-*"):
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)


def _remove_leftovers(index_dir: Path) -> None:
    """Staging folders and pointer drafts from a build that was killed (we hold the lock)."""
    for path in index_dir.glob(".tmp-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in index_dir.glob(f".{POINTER}.*"):
        path.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    """Hash of a file's bytes (also used to fingerprint corpus files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def info_json(stored: StoredIndex) -> dict:
    """What `python -m index info --json` prints and GET /info returns: the version folder and its manifest."""
    return {"index": str(stored.path), **stored.manifest.to_json()}


def manifest_of(folder: Path) -> Manifest:
    """The manifest of a version folder, checked for this program's format.

    Raises:
        IndexDamaged: It is missing, not JSON, malformed, or of another format version.
    """
    return _read_manifest(folder)
