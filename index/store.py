"""The on-disk index: format, atomic publish, locking, load and verify.

An index folder holds versions side by side and a small pointer file:

    INDEX_DIR/CURRENT            name of the live version (replaced atomically)
    INDEX_DIR/.lock              held by the one process allowed to publish
    INDEX_DIR/v-<time>-<id>/     one complete version:
        manifest.json            format, model, dimensions, counts, settings, file hashes
        passages.jsonl           line i = passage i (text + every location)
        vectors.faiss            row i = unit vector of passage i (inner product = cosine):
                                 exact (Flat) up to Settings.exact_search_limit passages,
                                 approximate (IVF, 8-bit scalar quantizer) above
        lists.ivfdata            approximate indexes only: the IVF lists, assembled from
                                 shards and merged on disk (index.shards)
        vectors.npy              approximate indexes only: row i = passage i as float16,
                                 memory-mapped, for exact re-scoring and reuse on update
        sentences.npy            float16 vectors of the answer candidates of every passage
        sentence_rows.npy        passage i's candidates are rows [rows[i], rows[i+1])
        keyword/                 BM25 index, row i = passage i
        documents.json           per-document info (source, text hash, passage count)
        texts.bin                every document's extracted text, row i = document i, memory-mapped
        text_rows.npy            where each document's text begins in texts.bin (index.texts)
        shards/                  when built with --shards N: N serving shards (index.sharding)
        sources.json             per-file fingerprints (to tell what changed since the build)

A new version is written into a hidden temporary folder, flushed, verified by
loading it back, renamed into place, and only then does CURRENT switch to it.
A crash at any moment leaves CURRENT naming a complete, verified version.

Large files are memory-mapped on load (the IVF lists as FAISS's on-disk
inverted lists, the .npy files with numpy), so a million-passage index does
not have to fit in resident memory; the pages a search touches are read
on demand.
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
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from index.dense import DenseIndex
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
from index.keyword import KeywordIndex
from index.records import FORMAT_VERSION, DocumentInfo, Manifest, Passage, Settings, Skipped
from index.shards import Map
from index.texts import DocumentTexts, write_texts

POINTER = "CURRENT"
LOCK = ".lock"
MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
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

    Passage i's candidates (`index.sentences.answer_candidates`, in order) are
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


@dataclass
class StoredIndex:
    """A loaded, verified index version: row i of `dense`, `keyword` and `sentences` is `passages[i]`."""

    path: Path
    manifest: Manifest
    passages: list[Passage]
    dense: DenseIndex
    keyword: KeywordIndex
    documents: list[DocumentInfo]
    sources: dict[str, SourceFile]
    sentences: SentenceVectors
    texts: DocumentTexts | None = None  # every version has them; None only for an index assembled in memory


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
    passages: list[Passage],
    vectors: np.ndarray,
    documents: list[DocumentInfo],
    sources: dict[str, SourceFile],
    settings: Settings,
    corpus: str,
    sentences: SentenceVectors,
    skipped: tuple[Skipped, ...] = (),
    parallel_map: Map = map,
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
        texts: Each document's extracted text, row i for `documents[i]` (served for citations).
        shards: Serving shards to write beside the whole index (`index.sharding`; 0: none).

    Returns:
        The published index, loaded back and verified.
    """
    if not passages:
        raise ValueError("no passages to index")
    if vectors.ndim != 2 or len(passages) != len(vectors):
        raise ValueError(f"{len(passages)} passages but vectors of shape {vectors.shape}")
    if len(sentences.starts) != len(passages) + 1:
        raise ValueError(f"{len(passages)} passages but sentence rows for {len(sentences.starts) - 1}")
    if len(texts) != len(documents):
        raise ValueError(f"{len(documents)} documents but {len(texts)} texts")
    _remove_leftovers(index_dir)
    staging = index_dir / f".tmp-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True)
        write_texts(staging, texts)
        _write_version(
            staging,
            model,
            passages,
            vectors,
            documents,
            sources,
            settings,
            corpus,
            skipped,
            sentences,
            parallel_map,
            shards,
        )
        stored = load_version(staging)  # refuse to publish what we could not read back
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
        previous = current_version(index_dir)
    except PointerDamaged:  # the build replaces it; no version is known to be in use
        previous = None
    try:
        _switch_pointer(index_dir, final.name)
    except OSError as exc:
        shutil.rmtree(final, ignore_errors=True)  # CURRENT was not replaced: nothing names it
        raise _not_written(index_dir, exc) from exc
    # The version just replaced stays one more round: a reader that read the old
    # pointer a moment ago can still load it.
    _remove_old_versions(index_dir, keep={final.name} | ({previous.name} if previous else set()))
    return stored


def _write_version(
    folder, model, passages, vectors, documents, sources, settings, corpus, skipped, sentences, parallel_map, shards=0
) -> None:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dimensions = vectors.shape[1]
    kind = DenseIndex.kind_for(len(vectors), settings.exact_search_limit)
    DenseIndex.save(folder, vectors, kind, parallel_map)
    np.save(folder / SENTENCES, np.asarray(sentences.vectors, dtype=np.float16), allow_pickle=False)
    np.save(folder / SENTENCE_ROWS, np.asarray(sentences.starts, dtype=np.int64), allow_pickle=False)
    with open(folder / PASSAGES, "w", encoding="utf-8") as out:
        for passage in passages:
            out.write(json.dumps(passage.to_json(), ensure_ascii=False) + "\n")
    keyword = KeywordIndex.build([p.text for p in passages])
    keyword.save(folder / KEYWORD)
    if shards:
        from index.sharding import write_shards  # sharding searches shards, and search reads this module

        write_shards(folder, passages, vectors, sentences, keyword, shards, settings, parallel_map)
    _write_json(folder / DOCUMENTS, [dict(vars(d)) for d in documents])
    _write_json(folder / SOURCES, {name: dict(vars(f)) for name, f in sorted(sources.items())})
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        model=model,
        dimensions=dimensions,
        documents=len(documents),
        passages=len(passages),
        locations=sum(len(p.locations) for p in passages),
        settings=settings,
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        corpus=corpus,
        files=_hash_files(folder),
        skipped=tuple(skipped),
        vector_index=kind,
        sentences=len(sentences.vectors),
        shards=shards,
    )
    _write_json(folder / MANIFEST, manifest.to_json())
    # Files first, then the folders that name them, so a power cut cannot keep a name without its data.
    for path in sorted(folder.rglob("*"), key=lambda p: (p.is_dir(), -len(p.parts))):
        _fsync(path)
    _fsync(folder)


def load(index_dir: Path, model: str | None = None) -> StoredIndex:
    """Load the live version of an index and verify it.

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
    """Load one version folder, checking the manifest and every file hash."""
    with _LOADING:
        return _load_version(folder)


def _load_version(folder: Path) -> StoredIndex:
    manifest = _read_manifest(folder)
    for name, expected in manifest.files.items():
        path = folder / name
        if not path.is_file():
            raise IndexDamaged(f"index file {path} is missing", rebuild_fix(folder.parent))
        if file_sha256(path) != expected:
            raise IndexDamaged(
                f"index file {path} does not match its manifest (damaged or edited)", rebuild_fix(folder.parent)
            )
    try:
        dense = DenseIndex.load(folder, manifest.vector_index)
        sentences = _read_sentences(folder, manifest)
        with open(folder / PASSAGES, encoding="utf-8") as lines:
            passages = [Passage.from_json(json.loads(line)) for line in lines]
        keyword = KeywordIndex.load(folder / KEYWORD, len(passages))
        documents = [DocumentInfo(**d) for d in _read_json(folder / DOCUMENTS)]
        sources = {name: SourceFile(**f) for name, f in _read_json(folder / SOURCES).items()}
        texts = DocumentTexts.load(folder)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexDamaged(f"index {folder} cannot be read ({exc})", rebuild_fix(folder.parent)) from exc
    counts = {"passages": len(passages), "vectors": len(dense), "vector rows": dense.rows, "documents": len(documents)}
    expected = {k: manifest.passages for k in ("passages", "vectors", "vector rows")} | {
        "documents": manifest.documents
    }
    counts["sentence rows"] = len(sentences.starts) - 1
    expected["sentence rows"] = manifest.passages
    counts["texts"], expected["texts"] = len(texts), manifest.documents
    if counts != expected or dense.dimensions != manifest.dimensions:
        raise IndexDamaged(
            f"index {folder} is inconsistent: found {counts} with {dense.dimensions} dimensions, manifest says "
            f"{expected} with {manifest.dimensions}",
            rebuild_fix(folder.parent),
        )
    return StoredIndex(folder, manifest, passages, dense, keyword, documents, sources, sentences, texts)


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


def _hash_files(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): file_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def file_sha256(path: Path) -> str:
    """Hash of a file's bytes (also used to fingerprint corpus files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


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
