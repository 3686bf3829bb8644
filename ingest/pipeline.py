"""Corpus folder in, published index out, re-embedding only what changed.

`build` is the one entry point the command line and the app share. It holds
the index's publish lock, reads every supported file, splits and
de-duplicates passages, takes the vectors of passages whose text the live
index already holds (ids are content hashes), embeds only the new ones, and
publishes the result atomically. While it runs, the live index keeps serving.

An update does only the work that depends on what changed: a document whose
text hash the live index already knows is not chunked again (its passages'
recorded locations are its chunks), and a passage the live index holds keeps
its passage and answer-sentence vectors. The result equals a full rebuild.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.embedding import Embedder
from index.records import Choice, DocumentInfo, Location, Settings, Skipped, text_id
from index.sentences import answer_candidates
from index.errors import IndexNotFound, StoreError
from index.store import Map, SentenceVectors, SourceFile, StoredIndex, file_sha256, load, publish, publish_lock
from ingest.chunking import Chunk, chunk_document
from ingest.dedup import deduplicate
from ingest.loaders import Document, corpus_root, discover, iter_documents

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
# (corpus, embedder, settings, file count, progress, the live index's known chunks)
#   -> (documents, chunks in corpus order, skipped)
Reader = Callable[[Path, Embedder, Settings, int, Progress, "KnownChunks"], tuple[list[DocumentInfo], list[Chunk], list[Skipped]]]


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


class SkippedFiles(ValueError):
    """Strict mode: files that could not be ingested, so nothing was published."""

    def __init__(self, skipped: list[Skipped]) -> None:
        self.skipped = tuple(skipped)
        names = "; ".join(f"{s.source}: {s.reason}" for s in skipped)
        super().__init__(f"{len(skipped)} file(s) could not be ingested (--strict, nothing published): {names}")


def fingerprint(corpus: Path) -> dict[str, SourceFile]:
    """Size, modification time and content hash of every supported file in the corpus."""
    prints = {}
    root = corpus_root(corpus)
    for path in discover(corpus):
        try:
            stat = path.stat()
            prints[path.relative_to(root).as_posix()] = SourceFile(stat.st_size, stat.st_mtime_ns, file_sha256(path))
        except OSError:
            continue  # unreadable files are reported by the loader
    return prints


def changed_sources(corpus: Path, stored: StoredIndex) -> list[str]:
    """Files added, removed or edited since the index was built (cheap: hashes only when size/mtime differ)."""
    changed = []
    root = corpus_root(corpus)
    current = {path.relative_to(root).as_posix(): path for path in discover(corpus)}
    for name in sorted(set(current) | set(stored.sources)):
        known, path = stored.sources.get(name), current.get(name)
        if known is None or path is None:
            changed.append(name)
            continue
        try:
            stat = path.stat()
            if (stat.st_size, stat.st_mtime_ns) != (known.size, known.mtime_ns) and file_sha256(path) != known.sha256:
                changed.append(name)
        except OSError:
            changed.append(name)
    return changed


def build(
    corpus: Path,
    index_dir: Path,
    embedder: Embedder,
    settings: Settings = Settings(),
    progress: Progress | None = None,
    strict: bool = False,
    read: Reader | None = None,
    parallel_map: Map = map,
) -> BuildReport:
    """Build the index for `corpus`, or bring it up to date.

    Args:
        corpus: Folder of documents (sub-folders included).
        index_dir: Index folder; the live version keeps serving until the new one is published.
        embedder: The model that embeds passages (and later, questions).
        settings: Chunking settings.
        progress: Called as `progress(stage, done, total)`.
        strict: Refuse to publish when any file or record was skipped.
        read: Replaces the serial file reading and chunking (the Ray path reads in parallel tasks).
        parallel_map: Adds the shards of an approximate (large) index; the Ray path uses Ray tasks.

    Returns:
        A report of what was read, embedded, reused and skipped.

    Raises:
        IndexBusy: Another build holds the index.
        SkippedFiles: `strict` is set and something was skipped (nothing is published).
        ValueError: The corpus holds no passages at all.
    """
    began = time.perf_counter()
    report = progress or (lambda stage, done, total: None)
    if not corpus.exists():
        raise FileNotFoundError(f"corpus {corpus} does not exist")
    with publish_lock(index_dir):
        previous, notes = _previous(index_dir, embedder.name)
        sources = fingerprint(corpus)
        if previous is not None and previous.sources == sources and previous.manifest.settings == settings:
            m = previous.manifest
            if strict and m.skipped:
                raise SkippedFiles(list(m.skipped))
            return BuildReport(
                m.documents, m.passages, 0, 0, m.skipped, time.perf_counter() - began, False, previous.path,
                ("index is up to date",),
            )
        known = _known_chunks(previous, settings)
        documents, chunks, skipped = (read or _read)(corpus, embedder, settings, len(sources), report, known)
        if strict and skipped:
            raise SkippedFiles(skipped)
        passages = deduplicate(chunks, settings.near_duplicate_threshold)
        if not passages:
            raise ValueError(f"no text found in {corpus}: nothing to index ({len(skipped)} files skipped)")
        vectors, sentences, reused = _vectors(passages, previous, embedder, report)
        report(Stage.PUBLISH, 0, 1)
        stored = publish(
            index_dir,
            model=embedder.name,
            passages=passages,
            vectors=vectors,
            documents=documents,
            sources=sources,
            settings=settings,
            corpus=str(corpus),
            skipped=tuple(skipped),
            sentences=sentences,
            parallel_map=parallel_map,
        )
        report(Stage.PUBLISH, 1, 1)
    return BuildReport(
        len(documents), len(passages), len(passages) - reused, reused, tuple(skipped),
        time.perf_counter() - began, True, stored.path, tuple(notes),
    )


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


def _known_chunks(previous: StoredIndex | None, settings: Settings) -> KnownChunks:
    """Where the live index cut each document, to reuse for documents whose text is unchanged.

    Every chunk became a passage or a further location of one, so a
    document's locations across all passages are exactly its chunks.
    """
    if previous is None or _chunking(previous.manifest.settings) != _chunking(settings):
        return {}
    by_doc: dict[tuple[str, str], list[Location]] = {}
    for passage in previous.passages:
        for loc in passage.locations:
            by_doc.setdefault((loc.source, loc.doc_id), []).append(loc)
    known = {}
    for doc in previous.documents:
        locations = by_doc.get((doc.source, doc.doc_id), [])
        if len(locations) == doc.passages:
            known[(doc.source, doc.doc_id, doc.sha256)] = sorted(locations, key=lambda loc: loc.start)
    return known


def _chunking(settings: Settings) -> tuple[int, int]:
    return settings.max_tokens, settings.min_tokens


def _chunks(doc: Document, embedder: Embedder, settings: Settings, known: KnownChunks) -> list[Chunk]:
    reused = known_chunks(doc, known)
    return chunk_document(doc, embedder.count_tokens, settings) if reused is None else reused


def known_chunks(doc: Document, known: KnownChunks) -> list[Chunk] | None:
    """The document's chunks as the live index cut them, when its text is unchanged."""
    locations = known.get((doc.source, doc.doc_id, text_id(doc.text)))
    if locations is None:
        return None
    return [Chunk(doc.text[loc.start : loc.end], loc) for loc in locations]


def _read(corpus: Path, embedder: Embedder, settings: Settings, files: int, report: Progress, known: KnownChunks):
    documents: list[DocumentInfo] = []
    chunks: list[Chunk] = []
    skipped: list[Skipped] = []
    seen_files: set[str] = set()
    report(Stage.READ, 0, files)
    for item in iter_documents(corpus):
        if isinstance(item, Skipped):
            skipped.append(item)
            source = item.source.split(":")[0]
        else:
            doc_chunks = _chunks(item, embedder, settings, known)
            chunks.extend(doc_chunks)
            documents.append(_info(item, len(doc_chunks)))
            source = item.source
        if source not in seen_files:
            seen_files.add(source)
            report(Stage.READ, len(seen_files), files)
    return documents, chunks, skipped


def _info(doc: Document, passages: int) -> DocumentInfo:
    return DocumentInfo(doc.doc_id, doc.source, text_id(doc.text), len(doc.text), passages)


def _vectors(
    passages, previous: StoredIndex | None, embedder: Embedder, report: Progress
) -> tuple[np.ndarray, SentenceVectors, int]:
    """Passage and answer-sentence vectors: reused by content hash where possible, embedded otherwise.

    Returns:
        Passage vectors (row i = passage i), answer-sentence vectors, and how
        many passages were reused.
    """
    known = {p.id: row for row, p in enumerate(previous.passages)} if previous is not None else {}
    old = {i: known[p.id] for i, p in enumerate(passages) if p.id in known}
    old_sentences = previous.sentences if previous is not None else None
    # Same text, same candidates: a reused passage keeps its stored sentence rows.
    spans = {i: answer_candidates(p.text) for i, p in enumerate(passages) if i not in old or old_sentences is None}
    counts = np.zeros(len(passages), dtype=np.int64)
    for i in range(len(passages)):
        if i in spans:
            counts[i] = len(spans[i]) if len(spans[i]) > 1 else 0
        else:
            counts[i] = len(old_sentences.of(old[i]))
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    vectors = np.zeros((len(passages), embedder.dimensions), dtype=np.float32)
    sentences = np.zeros((int(starts[-1]), embedder.dimensions), dtype=np.float32)
    if old:
        vectors[list(old)] = previous.dense.vectors(list(old.values()))
    if old and old_sentences is not None:
        here = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in old] or [[]]).astype(np.int64)
        there = np.concatenate(
            [np.arange(old_sentences.starts[r], old_sentences.starts[r + 1]) for r in old.values()] or [[]]
        ).astype(np.int64)
        sentences[here] = old_sentences.vectors[there]
    todo = [i for i in range(len(passages)) if i not in old]
    texts = [passages[i].text for i in todo]
    sentence_rows: list[int] = []
    for i, passage_spans in spans.items():
        if counts[i]:
            sentence_rows.extend(range(starts[i], starts[i + 1]))
            texts.extend(passages[i].text[s:e] for s, e in passage_spans)
    done = 0
    report(Stage.EMBED, 0, len(texts))

    def advance(count: int) -> None:
        nonlocal done
        done += count
        report(Stage.EMBED, done, len(texts))

    if texts:
        embedded = embedder.encode(texts, progress=advance)
        vectors[todo] = embedded[: len(todo)]
        sentences[sentence_rows] = embedded[len(todo) :]
    return vectors, SentenceVectors(sentences, starts), len(passages) - len(todo)
