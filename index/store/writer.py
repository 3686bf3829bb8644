"""Publishing a new version: written beside the live one, checked, then made live atomically.

A new version is written into a hidden temporary folder, hashed as it is
written, flushed, checked by loading it back, renamed into place, and only
then does CURRENT switch to it. A crash at any moment leaves CURRENT naming a
complete, checked version. A file whose content is the previous version's
(the same passages, the same vectors) is hard-linked from it instead of
written again.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np

from index.errors import (
    IndexWriteFailed,
)
from index.records import FORMAT_VERSION, Manifest
from index.retrievers.dense import DenseIndex
from index.retrievers.keyword import KeywordIndex
from index.retrievers.parts import Map
from index.store.passages import location_table, passage_line
from index.store.pointer import remove_leftovers, remove_old_versions, switch_pointer
from index.store.reader import StoredIndex, load_version
from index.store.shards import SHARDS, write_shards
from index.store.texts import TEXT_ROWS, TEXTS, write_texts
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
    BuildInfo,
    VersionContent,
    file_sha256,
    file_stat,
    fsync,
)
from index.store.vocabulary import VOCABULARY, write_vocabulary


def publish(
    index_dir: Path,
    content: VersionContent,
    info: BuildInfo,
    *,
    previous: StoredIndex | None = None,
    previous_rows: Sequence[int | None] | None = None,
    parallel_map: Map = map,
    timings: Callable[[str, float], None] | None = None,
    keep_versions: int = 1,
) -> StoredIndex:
    """Write a new version and make it live atomically. Caller holds `publish_lock`.

    Args:
        index_dir: The index folder (created if needed).
        content: What the version holds.
        info: How it was built (model, chunking settings, corpus, serving shards).
        previous: The live version this one updates: files whose content would be the
            same are hard-linked from it, and its passages' keyword terms are reused.
        previous_rows: With `previous`: the row of each passage in it, or None for a new passage.
        parallel_map: Adds the parts of an approximate index (see `DenseIndex.save`).
        timings: Called as `timings(step, seconds)` for the steps "write" and "verify".
        keep_versions: Previous versions kept while readers hold them (`remove_old_versions`).

    Returns:
        The published index, loaded back and checked.
    """
    passages, vectors, sentences, signatures = content.passages, content.vectors, content.sentences, content.signatures
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
    if len(content.texts) != len(content.documents):
        raise ValueError(f"{len(content.documents)} documents but {len(content.texts)} texts")
    remove_leftovers(index_dir)
    staging = index_dir / f".tmp-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True)
        began = time.perf_counter()
        version = _Version(staging, previous, previous_rows)
        version.write(content, info, parallel_map)
        written = time.perf_counter()
        stored = load_version(staging)  # refuse to publish what we could not read back
        if timings is not None:
            timings("write", written - began)
            timings("verify", time.perf_counter() - written)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        final = index_dir / f"v-{stamp}-{staging.name[5:]}"
        staging.rename(final)  # open files and memory maps follow the rename
        fsync(index_dir)  # the rename is on disk before CURRENT may name it
        stored.path = final
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError | RuntimeError):  # a full disk: FAISS raises RuntimeError, numpy and open OSError
            raise _not_written(index_dir, exc) from exc
        raise
    try:
        switch_pointer(index_dir, final.name)
    except OSError as exc:
        shutil.rmtree(final, ignore_errors=True)  # CURRENT was not replaced: nothing names it
        raise _not_written(index_dir, exc) from exc
    remove_old_versions(index_dir, final.name, keep_versions)
    return stored


class _Version:
    """Writes one version folder: each file hashed as it is written, or hard-linked from the previous version."""

    def __init__(self, folder: Path, previous: StoredIndex | None, previous_rows: Sequence[int | None] | None) -> None:
        self.folder = folder
        self.previous = previous
        self.previous_rows = previous_rows
        self.hashes: dict[str, str] = {}

    def write(self, content: VersionContent, info: BuildInfo, parallel_map: Map) -> None:
        passages, sentences, signatures, keyword = (
            content.passages,
            content.sentences,
            content.signatures,
            content.keyword,
        )
        documents, sources, texts, skipped = content.documents, content.sources, content.texts, content.skipped
        model, settings, corpus, shards = info.model, info.settings, info.corpus, info.shards
        vectors = np.ascontiguousarray(content.vectors, dtype=np.float32)
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
                keyword = KeywordIndex.build([p.indexed_text for p in passages], reuse=reuse)
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
        write_vocabulary(self.folder, (p.text for p in passages))
        self._hash(VOCABULARY)
        if shards:
            if keyword is None:  # linked from the previous version, whose passages these are, row for row
                keyword = self.previous.keyword
            write_shards(self.folder, passages, vectors, sentences, keyword, shards, settings, parallel_map)
            self._hash(*self._files_under(SHARDS))
        # Files first, then the folders that name them, so a power cut cannot keep a name without its data.
        for path in sorted(self.folder.rglob("*"), key=lambda p: (p.is_dir(), -len(p.parts))):
            fsync(path)
        stats = {name: file_stat(self.folder / name) for name in sorted(self.hashes)}
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
            readers=dict(sorted(info.readers.items())),
        )
        path = self.folder / MANIFEST
        path.write_text(json.dumps(manifest.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
        fsync(path)
        fsync(self.folder)

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
