"""Corpus folder in, published index out, re-embedding only what changed.

`build` is the one entry point the command line, the app and the Ray path
share, and the one place the steps of a build are written:

    read files -> chunk documents -> de-duplicate -> embed -> publish

It holds the index's publish lock, reads every supported file, splits and
de-duplicates passages, takes the vectors of passages whose text the live
index already holds (ids are content hashes, `ingest.vectors.VectorCache`),
embeds only the new ones, and publishes the result atomically. While it
runs, the live index keeps serving.

Where the parallel work runs is the `Executor`'s business: `LocalExecutor`
reads, chunks and embeds in this process; `ingest.distributed.RayExecutor`
maps the same functions over Ray tasks and embeds on a pool of Ray actors.
Everything else, global de-duplication included, runs here either way, so
both give the same index.

An update does only the work that depends on what changed: a file whose
content hash is the one the live index recorded is not read again (its skip
reasons, or its documents and their chunks, come from the live index), a
document whose text hash the live index already knows is not chunked again
(its passages' recorded locations are its chunks), and a passage the live
index holds keeps its passage and answer-sentence vectors. The result equals
a full rebuild.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from index.embed.registry import Embedder
from index.errors import IndexNotFound, IndexWriteFailed, StoreError
from index.records import Choice, DocumentInfo, Location, Passage, Settings, Skipped, text_id
from index.retrievers.parts import Map
from index.store.changes import IndexChange, diff_sources, record_change
from index.store.pointer import publish_lock, remove_old_versions
from index.store.reader import StoredIndex, load
from index.store.version import BuildInfo, Signatures, SourceFile, VersionContent, file_sha256
from index.store.writer import publish
from ingest.chunking import Chunk, chunk_document
from ingest.dedup import SCHEME, Deduplicator
from ingest.loaders import READERS, Document, corpus_root, discover, read_file, reader_of
from ingest.loaders.document import BlockKind
from ingest.vectors import VectorCache

Item = TypeVar("Item")
Result = TypeVar("Result")


class Stage(Choice):
    """The steps of a build that report progress, in order."""

    READ = "read"
    EMBED = "embed"
    PUBLISH = "publish"

    @property
    def label(self) -> str:
        """What a person reads while this stage runs (progress bars in the terminal and the app)."""
        return {"read": "Reading files", "embed": "Embedding passages", "publish": "Publishing the index"}[self.value]

    @property
    def unit(self) -> str:
        """What the stage counts."""
        return {"read": "file", "embed": "text", "publish": "step"}[self.value]


# (stage, done, total)
Progress = Callable[[Stage, int, int], None]


class Executor(Protocol):
    """Where a build's parallel work runs: a map over items, and the embedder."""

    embedder: Embedder

    def map(self, function: Callable[[Item], Result], items: Sequence[Item]) -> Iterator[Result]:
        """`function` over `items`, results in the items' order, yielded as they are ready.

        `function` is picklable (a module-level function or a `functools.partial` of one).
        """
        ...

    def chunker(self, settings: Settings) -> Callable[[Document], list[Chunk]]:
        """A picklable function chunking one document with the embedder's token counter."""
        ...


class LocalExecutor:
    """Everything in this process: the builtin `map`, and the embedder as given."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def map(self, function: Callable[[Item], Result], items: Sequence[Item]) -> Iterator[Result]:
        return map(function, items)

    def chunker(self, settings: Settings) -> Callable[[Document], list[Chunk]]:
        return partial(chunk_document, count_tokens=self.embedder.count_tokens, settings=settings)


@dataclass(frozen=True)
class Rules:
    """How strictly a build reads.

    Attributes:
        strict: Refuse to publish when any file or record was skipped.
        full: Read every file again, even one whose bytes and reader did not change.
    """

    strict: bool = False
    full: bool = False


def stale_readers(previous: StoredIndex | None, full: bool = False) -> frozenset[str]:
    """The kinds of file (`reader_of`) whose reader changed since `previous` was built: they are read again."""
    if previous is None:
        return frozenset()
    recorded = previous.manifest.readers
    return frozenset(kind for kind, version in READERS.items() if full or recorded.get(kind) != version)


@dataclass(frozen=True)
class Reusable:
    """What the live index offers a build: its passages, and which files it read with today's readers.

    Attributes:
        previous: The live index (None for a build from nothing).
        sources: The corpus's files now, by name.
        live: `previous`'s passages, read once.
        stale: Kinds of file whose reader changed (`stale_readers`): their files are read again.
    """

    previous: StoredIndex | None
    sources: dict[str, SourceFile]
    live: Sequence[Passage]
    stale: frozenset[str] = frozenset()

    def fresh_sources(self) -> dict[str, SourceFile]:
        """The files whose stored reading may stand: those of kinds whose reader did not change."""
        return {name: f for name, f in self.sources.items() if reader_of(name) not in self.stale}


@dataclass(frozen=True)
class BuildReport:
    """What one run of `build` did."""

    documents: int
    passages: int
    embedded: int
    reused: int
    skipped: tuple[Skipped, ...]
    seconds: float
    published: bool
    index_path: Path | None
    notes: tuple[str, ...] = field(default=())
    # The files this build added, changed, removed and renamed (None when nothing was published).
    change: IndexChange | None = None
    # Files read as documents: `documents` counts each record of a .jsonl file, `files` the file once.
    files: int = 0


class SkippedFiles(ValueError):
    """Strict mode: files that could not be ingested, so nothing was published."""

    def __init__(self, skipped: list[Skipped]) -> None:
        self.skipped = tuple(skipped)
        names = "; ".join(f"{s.source}: {s.reason}" for s in skipped)
        super().__init__(f"{len(skipped)} file(s) could not be ingested (--strict, nothing published): {names}")


def fingerprint(corpus: Path, known: dict[str, SourceFile] | None = None) -> dict[str, SourceFile]:
    """Size, modification time and content hash of every supported file in the corpus.

    A file that cannot be opened (a broken link, no permission) is fingerprinted
    by the link or entry itself with no hash, so adding, removing or mending it
    is a change like any other; the loader reports why it was skipped. A file
    whose size and time are the recorded ones is still opened and its first
    byte read: `chmod 000` changes neither, and such a file must leave the index.

    Args:
        corpus: The corpus folder, or one file.
        known: Fingerprints from the live index: a file whose size and
            modification time are the ones recorded keeps its recorded hash, unread.
    """
    prints = {}
    root = corpus_root(corpus)
    known = known or {}
    for path in discover(corpus):
        name = path.relative_to(root).as_posix()
        try:
            stat = path.stat()
            before = known.get(name)
            if (
                before is not None
                and before.sha256
                and (stat.st_size, stat.st_mtime_ns) == (before.size, before.mtime_ns)
            ):
                _check_readable(path)
                prints[name] = before
            else:
                prints[name] = SourceFile(stat.st_size, stat.st_mtime_ns, file_sha256(path))
        except OSError:
            try:
                entry = path.lstat()
            except OSError:
                continue  # gone since it was listed
            prints[name] = SourceFile(entry.st_size, entry.st_mtime_ns, UNREADABLE)
    return prints


# The hash of a file that could not be read when it was fingerprinted.
UNREADABLE = ""


def _check_readable(path: Path) -> None:
    """Open `path` and read its first byte, as the loader would (no blocking: it may have become a pipe).

    Raises:
        OSError: It cannot be read (no permission, an I/O error).
    """
    handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.pread(handle, 1, 0)
    finally:
        os.close(handle)


def changed_sources(corpus: Path, stored: StoredIndex) -> list[str]:
    """Files added, removed or edited since the index was built (cheap: hashes only when size/mtime differ)."""
    now = fingerprint(corpus, stored.sources)
    return sorted(name for name in set(now) | set(stored.sources) if now.get(name) != stored.sources.get(name))


def build(  # noqa: PLR0913 (a BuildOptions dataclass would gather strict, shards and keep_versions)
    corpus: Path,
    index_dir: Path,
    embedder: Embedder | None = None,
    settings: Settings = Settings(),
    progress: Progress | None = None,
    rules: Rules = Rules(),
    executor: Executor | None = None,
    shards: int | None = None,
    keep_versions: int = 1,
) -> BuildReport:
    """Build the index for `corpus`, or bring it up to date.

    Args:
        corpus: Folder of documents (sub-folders included), or one file.
        index_dir: Index folder; the live version keeps serving until the new one is published.
        embedder: The model that embeds passages (and later, questions); runs in this process.
        settings: Chunking settings.
        progress: Called as `progress(stage, done, total)`.
        rules: `strict`: refuse to publish when any file or record was skipped; `full`: read every file
            again (vectors are still reused by content hash).
        executor: Instead of `embedder`: where reading, chunking, embedding and the approximate index's parts run
            (`ingest.distributed.RayExecutor` for Ray).
        shards: Serving shards to publish beside the whole index (`index.search.sharded`; 0: none);
            None keeps the live index's count, so a rebuild from the app keeps the layout being served.
        keep_versions: Previous versions kept while readers hold them ($KB_KEEP_VERSIONS); one no reader
            holds is removed by this build, whether or not it publishes.

    Returns:
        A report of what was read, embedded, reused and skipped.

    Raises:
        IndexBusy: Another build holds the index.
        IndexWriteFailed: The index folder cannot be written (read-only, no permission).
        SkippedFiles: `rules.strict` is set and something was skipped (nothing is published).
        ValueError: The corpus holds no passages at all.
    """
    if (embedder is None) == (executor is None):
        raise ValueError("give build() an embedder or an executor, not both")
    if shards is not None and shards < 0:
        raise ValueError(f"--shards must be 0 (none) or more, got {shards}")
    executor = executor or LocalExecutor(embedder)
    began = time.perf_counter()
    report = progress or (lambda stage, done, total: None)
    if not corpus.exists():
        raise FileNotFoundError(f"corpus {corpus} does not exist")
    with _locked(index_dir):
        previous, notes = _previous(index_dir, executor.embedder.name)
        if previous is not None:  # versions no reader holds any more, a deleted document's text with them
            remove_old_versions(index_dir, previous.path.name, keep_versions)
        sources = fingerprint(corpus, previous.sources if previous is not None else None)
        if shards is None:
            shards = previous.manifest.shards if previous is not None else 0
        stale = stale_readers(previous, rules.full)
        if (
            previous is not None
            and previous.sources == sources
            and previous.manifest.settings == settings
            and previous.manifest.shards == shards
            and not any(reader_of(name) in stale for name in sources)
        ):
            m = previous.manifest
            if rules.strict and m.skipped:
                raise SkippedFiles(list(m.skipped))
            return BuildReport(
                m.documents,
                m.passages,
                0,
                0,
                m.skipped,
                time.perf_counter() - began,
                False,
                previous.path,
                ("index is up to date",),
                files=len({d.source for d in previous.documents}),
            )
        live = list(previous.passages) if previous is not None else []  # read once, used thrice
        reusable = Reusable(previous, sources, live, stale)
        documents, chunks, skipped, texts = read_corpus(corpus, executor, settings, reusable, report)
        if rules.strict and skipped:
            raise SkippedFiles(skipped)
        cache = VectorCache(executor.embedder, previous, [p.id for p in live])
        merged = Deduplicator(settings.near_duplicate_threshold, known=_stored_signatures(previous, cache))
        for chunk in chunks:
            merged.add(chunk)
        passages, signatures = merged.passages(), Signatures(SCHEME, merged.signatures())
        del merged, chunks  # their shingle sets and chunk copies are not needed past dedup
        if not passages:
            raise ValueError(f"no text found in {corpus}: nothing to index ({len(skipped)} files skipped)")
        vectors = cache.vectors(passages, progress=lambda done, total: report(Stage.EMBED, done, total))
        report(Stage.PUBLISH, 0, 1)
        stored = publish(
            index_dir,
            VersionContent(
                passages=passages,
                vectors=vectors.passages,
                sentences=vectors.sentences,
                documents=documents,
                sources=sources,
                texts=texts,
                signatures=signatures,
                skipped=tuple(skipped),
            ),
            BuildInfo(
                model=executor.embedder.name, settings=settings, corpus=str(corpus), shards=shards, readers=READERS
            ),
            parallel_map=executor_map(executor),
            previous=previous,
            previous_rows=vectors.live_rows,
            keep_versions=keep_versions,
        )
        report(Stage.PUBLISH, 1, 1)
        change = diff_sources(previous.sources if previous is not None else {}, sources)
        try:
            change = record_change(index_dir, change, stored.path.name)
        except OSError as exc:  # the index is published; only the "updated ... ago" line is lost
            notes.append(f"could not record what changed in {index_dir}: {exc}")
    return BuildReport(
        len(documents),
        len(passages),
        len(passages) - vectors.reused,
        vectors.reused,
        tuple(skipped),
        time.perf_counter() - began,
        True,
        stored.path,
        (*notes, *(f"{d.source}: {note}" for d in documents for note in d.notes)),
        change,
        len({d.source for d in documents}),
    )


def _locked(index_dir: Path) -> ExitStack:
    """The index folder's publish lock, held; a folder that cannot be written says so and how to fix it.

    Only taking the lock is translated: an error while building keeps its own message.
    """
    stack = ExitStack()
    try:
        stack.enter_context(publish_lock(index_dir))
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()  # "read-only file system", "permission denied"
        raise IndexWriteFailed(
            f"cannot write to the index folder {index_dir} ({reason})",
            "make it writable, or build into another folder with --index DIR (or KB_INDEX=DIR)",
        ) from exc
    return stack


def read_corpus(
    corpus: Path,
    executor: Executor,
    settings: Settings,
    reusable: Reusable,
    report: Progress,
) -> tuple[list[DocumentInfo], list[Chunk], list[Skipped], list[str]]:
    """Read every file and chunk every document, in corpus order.

    A file unchanged since the live index was built (`sources`, its content
    hash) is not read again: its skip reasons, or its documents and their
    chunks, come from the live index (`unchanged_files`). So a file that was
    refused, a decompression bomb say, costs nothing more until it changes.
    The other files are read by `executor.map` (bad input never raises:
    `read_file`); documents the live index already cut keep its chunks and
    the rest are chunked by `executor.map`.

    Args:
        reusable: What the live index holds that this build may take instead of reading again.

    Returns:
        One `DocumentInfo` per document, the chunks in corpus order, what was
        skipped, and each document's extracted text.
    """
    root = corpus_root(corpus)
    badly_named: list[Skipped] = []
    paths = discover(corpus, rejected=badly_named)
    names = [path.relative_to(root).as_posix() for path in paths]
    previous, live = reusable.previous, reusable.live
    kept = unchanged_files(previous, reusable.fresh_sources(), settings, live)
    fresh = [path for path, name in zip(paths, names) if name not in kept]
    report(Stage.READ, len(paths) - len(fresh), len(paths))
    reader = partial(read_file, root=root, confined=corpus.is_dir())
    read = []
    for done, items in enumerate(executor.map(reader, fresh), start=len(paths) - len(fresh) + 1):
        read.append(items)
        report(Stage.READ, done, len(paths))
    fresh_items = iter(read)
    items = list(chain(badly_named, *(kept[name] if name in kept else next(fresh_items) for name in names)))
    docs = [item for item in items if isinstance(item, Document)]
    known = _known_chunks(previous, settings, live, reusable.stale) if docs else {}
    chunks_of = [known_chunks(doc, known) for doc in docs]
    todo = [n for n, chunks in enumerate(chunks_of) if chunks is None]
    for n, chunks in zip(todo, executor.map(executor.chunker(settings), [docs[n] for n in todo])):
        chunks_of[n] = chunks
    cut = iter(zip(docs, chunks_of))
    documents, chunks, texts = [], [], []
    for item in items:
        if isinstance(item, Skipped):
            continue
        info, doc_chunks, text = (item.info, item.chunks, item.text) if isinstance(item, Cut) else _cut(*next(cut))
        documents.append(info)
        chunks.extend(doc_chunks)
        texts.append(text)
    return documents, chunks, [item for item in items if isinstance(item, Skipped)], texts


@dataclass(frozen=True)
class Cut:
    """A document of a file not read again: what the live index knows of it, its chunks and its text."""

    info: DocumentInfo
    chunks: list[Chunk]
    text: str


def unchanged_files(
    previous: StoredIndex | None,
    sources: dict[str, SourceFile],
    settings: Settings,
    live: Sequence[Passage] | None = None,
) -> dict[str, list[Skipped | Cut]]:
    """What the live index holds of each file whose content is unchanged since it was built.

    Such a file gave the live index its skip reasons (a refused file, or bad
    records) and its documents, and every chunk of a document became a
    passage or a further location of one: the live index can stand in for
    reading it. A file is read again when the settings changed, or when one
    of its chunks is a passage's further location (a near copy, whose own
    text the index does not keep).

    Args:
        live: `previous`'s passages, when the caller has read them already.

    Returns:
        For each such file, its skips and documents in the order reading it gives them.
    """
    if previous is None or previous.manifest.settings != settings or not previous.described:
        return {}  # (not described: written before documents' titles and tags were kept, so read them again)
    unchanged = {
        name
        for name, now in sources.items()
        if name in previous.sources and previous.sources[name].sha256 == now.sha256
    }
    skipped_of: dict[str, list[Skipped]] = {}
    for item in previous.manifest.skipped:
        skipped_of.setdefault(_file_of(item.source), []).append(item)
    chunks_of: dict[tuple[str, str], list[Chunk]] = {}
    reread = set()
    for passage in previous.passages if live is None else live:
        first = passage.location
        if first.source in unchanged:
            chunks_of.setdefault((first.source, first.doc_id), []).append(Chunk(passage.text, first))
        reread.update(loc.source for loc in passage.locations[1:])
    documents_of: dict[str, list[tuple[int, DocumentInfo]]] = {}
    for row, doc in enumerate(previous.documents):
        documents_of.setdefault(doc.source, []).append((row, doc))
    kept = {}
    for name in unchanged - reread:
        cuts = []
        for row, doc in documents_of.get(name, []):
            chunks = sorted(chunks_of.get((doc.source, doc.doc_id), []), key=lambda chunk: chunk.location.start)
            if len(chunks) != doc.passages:
                break
            cuts.append(Cut(doc, chunks, previous.texts.text(row)))
        else:
            if cuts or name in skipped_of:
                kept[name] = [*skipped_of.get(name, []), *cuts]
    return kept


def _file_of(skipped: str) -> str:
    """The corpus file a skip belongs to: "records.jsonl:12" (line 12) to "records.jsonl"."""
    name, colon, line = skipped.rpartition(":")
    return name if colon and line.isdigit() else skipped


def _stored_signatures(previous: StoredIndex | None, cache: VectorCache) -> Callable[[str], np.ndarray | None] | None:
    """The live index's duplicate signature of a passage id, when it stored them as `ingest.dedup` reads them."""
    if previous is None or previous.signatures is None or previous.signatures.scheme != SCHEME:
        return None
    rows = previous.signatures.rows

    def known(passage_id: str) -> np.ndarray | None:
        row = cache.live_row(passage_id)
        return None if row is None else np.asarray(rows[row])

    return known


def executor_map(executor: Executor) -> Map:
    """`map(function, *iterables)` over the executor, as the store adds an approximate index's parts."""

    def parallel_map(function: Callable, *iterables: Iterable) -> Iterator:
        return executor.map(partial(_call, function), list(zip(*iterables)))

    return parallel_map


def _call(function: Callable, args: tuple):
    return function(*args)


def _previous(index_dir: Path, model: str) -> tuple[StoredIndex | None, list[str]]:
    """The live index, when there is a usable one to update."""
    try:
        return load(index_dir, model=model), []
    except IndexNotFound:
        return None, []
    except StoreError as exc:  # damaged, or built with another model: rebuilt from scratch
        return None, [f"previous index not reused: {exc}"]


# (source, doc_id, text hash) -> that document's chunk locations in the live index
KnownChunks = dict[tuple[str, str, str], list[Location]]


def _known_chunks(
    previous: StoredIndex | None, settings: Settings, live: Sequence[Passage], stale: frozenset[str]
) -> KnownChunks:
    """Where the live index cut each document, to reuse for documents whose text is unchanged.

    Every chunk became a passage or a further location of one, so a
    document's locations across all passages are exactly its chunks.
    """
    if previous is None or _chunking(previous.manifest.settings) != _chunking(settings):
        return {}
    by_doc: dict[tuple[str, str], list[Location]] = {}
    for passage in live:
        for loc in passage.locations:
            by_doc.setdefault((loc.source, loc.doc_id), []).append(loc)
    known = {}
    for doc in previous.documents:
        if reader_of(doc.source) in stale:  # the same text may now have other headings
            continue
        locations = by_doc.get((doc.source, doc.doc_id), [])
        if len(locations) == doc.passages:
            known[(doc.source, doc.doc_id, doc.sha256)] = sorted(locations, key=lambda loc: loc.start)
    return known


def _chunking(settings: Settings) -> tuple[int, int, int | None]:
    return settings.max_tokens, settings.min_tokens, settings.max_chars


def known_chunks(doc: Document, known: KnownChunks) -> list[Chunk] | None:
    """The document's chunks as the live index cut them, when its text is unchanged."""
    locations = known.get((doc.source, doc.doc_id, text_id(doc.text)))
    if locations is None:
        return None
    return [Chunk(doc.text[loc.start : loc.end], loc) for loc in locations]  # each location keeps its section


def _cut(doc: Document, chunks: list[Chunk]) -> tuple[DocumentInfo, list[Chunk], str]:
    headings = tuple((b.start, b.end, b.level) for b in doc.blocks if b.kind is BlockKind.HEADING)
    info = DocumentInfo(
        doc.doc_id,
        doc.source,
        text_id(doc.text),
        len(doc.text),
        len(chunks),
        notes=doc.notes,
        headings=headings,
        title=doc.title,
        tags=doc.tags,
        pages=doc.pages,
    )
    return info, chunks, doc.text
