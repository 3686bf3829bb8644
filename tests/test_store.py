"""The stored index: round trip, atomic publish, refusal of damaged or mismatched indexes."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from index import rowfile
from index.errors import (
    IndexBusy,
    IndexDamaged,
    IndexNotFound,
    IndexWriteFailed,
    ModelMismatch,
    PointerDamaged,
    StoreError,
)
from index.records import DocumentInfo, Location, Passage, Settings, text_id
from index.retrievers import dense
from index.retrievers.dense import ivf_plan
from index.retrievers.parts import sample_rows, train
from index.search.searcher import Searcher
from index.store.passages import PassageFile
from index.store.pointer import current_version, publish_lock
from index.store.reader import load, verify
from index.store.version import BuildInfo, SentenceVectors, VersionContent
from index.store.writer import publish
from ingest.loaders import load_file
from ingest.pipeline import build
from tests.helpers import BREAKS, REPO, OtherModelEmbedder, break_index


def test_round_trip_keeps_passages_vectors_and_manifest(tiny_corpus, tmp_path, fake_embedder):
    report = build(tiny_corpus, tmp_path / "idx", fake_embedder)
    stored = load(tmp_path / "idx", model=fake_embedder.name)
    assert stored.manifest.passages == len(stored.passages) == report.passages == len(stored.dense)
    assert stored.manifest.model == fake_embedder.name
    assert stored.manifest.dimensions == fake_embedder.dimensions
    assert stored.manifest.settings == Settings()
    assert stored.manifest.documents == 3
    expected = fake_embedder.encode([p.indexed_text for p in stored.passages])  # heading path, then text
    np.testing.assert_allclose(stored.dense.vectors(), expected, atol=1e-6)
    for passage in stored.passages:
        for loc in passage.locations:
            [document] = load_file(tiny_corpus / loc.source, loc.source)
            assert document.text[loc.start : loc.end] == passage.text


def test_missing_index_says_how_to_build(tmp_path):
    with pytest.raises(IndexNotFound, match=r"no index found in .*python -m ingest") as raised:
        load(tmp_path / "nothing")
    assert raised.value.fix == f"build one with: python -m ingest --index {tmp_path / 'nothing'}"
    assert isinstance(raised.value, StoreError) and not isinstance(raised.value, IndexDamaged)


@pytest.fixture
def built(tiny_corpus, tmp_path, fake_embedder) -> Path:
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    return current_version(tmp_path / "idx")


def edit_later(path: Path, text: str) -> None:
    """Write `text` to `path` as an edit made a second after the build would (mtimes tick in milliseconds)."""
    before = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def test_tampered_file_is_refused_naming_it(built):
    path = built / "passages.jsonl"
    size = path.stat().st_size
    edit_later(path, path.read_text(encoding="utf-8").replace("vertebrae", "vertebræ"))
    assert path.stat().st_size == size  # same size: caught by its changed time, then its hash
    with pytest.raises(IndexDamaged, match=r"passages\.jsonl does not match its manifest.*python -m ingest"):
        load(built.parent)


def test_a_file_of_another_size_is_refused_without_hashing_anything(built, monkeypatch):
    import index.store.reader as store

    path = built / "documents.json"
    path.write_text(path.read_text(encoding="utf-8") + " ", encoding="utf-8")
    monkeypatch.setattr(store, "file_sha256", lambda path: pytest.fail(f"hashed {path}"))
    with pytest.raises(IndexDamaged, match=r"documents\.json does not match its manifest"):
        load(built.parent)


def test_loading_reads_sizes_and_times_and_hashes_nothing(built, monkeypatch):
    import index.store.reader as store

    monkeypatch.setattr(store, "file_sha256", lambda path: pytest.fail(f"hashed {path}"))
    stored = load(built.parent)
    assert isinstance(stored.passages, PassageFile) and len(stored.passages) == stored.manifest.passages
    assert set(stored.manifest.file_stats) == set(stored.manifest.files)


def test_a_copied_index_whose_times_changed_loads_after_its_files_are_hashed(built, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copytree(built, copy / built.name, copy_function=shutil.copyfile)  # new modification times
    (copy / "CURRENT").write_text(built.name + "\n", encoding="utf-8")
    assert load(copy).manifest.passages == load(built.parent).manifest.passages


def test_an_edit_that_keeps_size_and_time_is_found_by_verify(built, capsys):
    from index.__main__ import main

    assert main(["verify", "--index", str(built.parent)]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {built}: ")
    path = built / "passages.jsonl"
    stat = path.stat()
    path.write_text(path.read_text(encoding="utf-8").replace("vertebrae", "vertebræ"), encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    load(built.parent)  # loading checks sizes and times only, so that it costs the same at any size
    with pytest.raises(IndexDamaged, match=r"passages\.jsonl does not match its manifest"):
        verify(built.parent)
    assert main(["verify", "--index", str(built.parent)]) == 1
    assert "passages.jsonl does not match its manifest" in capsys.readouterr().err


def test_passages_are_read_by_row_from_disk(built, tiny_corpus, fake_embedder):
    stored = load(built.parent)
    passages = list(stored.passages)
    assert [stored.passages[i] for i in range(len(passages))] == passages
    assert stored.passages[-1] == passages[-1] and stored.passages[1:3] == passages[1:3]
    assert stored.passages[np.int64(0)] == passages[0]
    assert stored.passages == passages and stored.passages.index(passages[2]) == 2
    with pytest.raises(IndexError):
        stored.passages[len(passages)]


def test_truncated_vectors_are_refused(built):
    path = built / "vectors.faiss"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IndexDamaged, match=r"vectors\.faiss"):
        load(built.parent)


def test_deleted_file_is_refused(built):
    (built / "documents.json").unlink()
    with pytest.raises(IndexDamaged, match=r"documents\.json is missing"):
        load(built.parent)


def test_other_model_is_refused(built):
    with pytest.raises(ModelMismatch, match=r"built with model 'test/fake-hashing-embedder'.*other/model") as raised:
        load(built.parent, model="other/model")
    assert raised.value.fix == f"rebuild it with: python -m ingest --index {built.parent}"


def test_other_format_version_is_refused(built):
    manifest = json.loads((built / "manifest.json").read_text())
    manifest["format_version"] = 99
    (built / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexDamaged, match=r"format version 99"):
        load(built.parent)


# What CURRENT may hold after a bad copy, a bad edit or an attack.
GARBAGE_POINTERS = {
    "not UTF-8": b"\xd6\xff",
    "empty": b"",
    "blank": b" \n",
    "parent folders": b"../../etc\n",
    "absolute path": b"/etc\n",
    "a sub-folder": b"v-1/../../x\n",
    "not a version": b".tmp-12345678\n",
    "huge": b"v-" + b"x" * 100_000,
}


@pytest.mark.parametrize("content", GARBAGE_POINTERS.values(), ids=GARBAGE_POINTERS.keys())
def test_garbage_in_current_is_a_clear_error_whose_fix_names_the_index_folder(built, content):
    index_dir = built.parent
    (index_dir / "CURRENT").write_bytes(content)
    with pytest.raises(PointerDamaged, match=r"index pointer .*CURRENT") as raised:
        load(index_dir)
    assert isinstance(raised.value, IndexDamaged)
    assert raised.value.fix == f"rebuild it with: python -m ingest --index {index_dir}"


def test_current_that_cannot_be_read_is_a_clear_error(built):
    index_dir = built.parent
    (index_dir / "CURRENT").unlink()
    (index_dir / "CURRENT").mkdir()
    with pytest.raises(PointerDamaged, match=r"index pointer .*CURRENT cannot be read") as raised:
        load(index_dir)
    assert raised.value.fix == f"rebuild it with: python -m ingest --index {index_dir}"


@pytest.mark.parametrize("content", GARBAGE_POINTERS.values(), ids=GARBAGE_POINTERS.keys())
def test_a_build_replaces_garbage_in_current(built, tiny_corpus, fake_embedder, content):
    index_dir = built.parent
    (index_dir / "CURRENT").write_bytes(content)
    report = build(tiny_corpus, index_dir, fake_embedder)
    assert report.published and any("previous index not reused" in note for note in report.notes)
    assert load(index_dir).manifest.documents == 3


def test_failed_build_leaves_previous_index_serving(tiny_corpus, tmp_path, fake_embedder, monkeypatch):
    index_dir = tmp_path / "idx"
    build(tiny_corpus, index_dir, fake_embedder)
    before = current_version(index_dir)
    (tiny_corpus / "new.txt").write_text("A brand new document about knees.", encoding="utf-8")

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("index.retrievers.keyword.KeywordIndex.save", explode)
    with pytest.raises(IndexWriteFailed, match="disk full"):
        build(tiny_corpus, index_dir, fake_embedder)
    assert current_version(index_dir) == before
    assert not list(index_dir.glob(".tmp-*"))
    assert load(index_dir).manifest.documents == 3


# What FAISS raises when write_index runs out of disk.
FAISS_DISK_FULL = (
    "Error in void faiss::write_index(const Index*, IOWriter*, int) at /project/faiss/impl/index_write.cpp:499: "
    "Error: 'ret == (size * 4)' failed: write error in {path}: 4051 != 10240 (No space left on device)"
)


def test_full_disk_is_an_error_line_and_the_live_index_stays(tiny_corpus, tmp_path, monkeypatch, capsys):
    """FAISS's RuntimeError from write_index becomes `error: ...`, exit 1, nothing lost."""
    import faiss

    from ingest.__main__ import main as ingest_main

    monkeypatch.setenv("KB_EMBEDDER", "fake")
    index_dir = tmp_path / "idx"
    argv = ["--corpus", str(tiny_corpus), "--index", str(index_dir)]
    assert ingest_main(argv) == 0
    before = current_version(index_dir)
    (tiny_corpus / "new.txt").write_text("A brand new document about knees.", encoding="utf-8")

    def full_disk(index, path):
        raise RuntimeError(FAISS_DISK_FULL.format(path=path))

    monkeypatch.setattr(faiss, "write_index", full_disk)
    capsys.readouterr()
    assert ingest_main(argv) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(f"error: cannot write a new version of the index in {index_dir}: no space left on device")
    assert "the index in use is unchanged" in err and f"free space on the disk holding {index_dir}" in err
    assert current_version(index_dir) == before and load(index_dir).manifest.documents == 3
    assert not list(index_dir.glob(".tmp-*"))


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode(errors='replace').strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_full_tmpfs_is_an_error_line_and_the_live_index_stays(small_disk, tiny_corpus, tmp_path):
    """A real full disk: 4 KB left, so FAISS's write_index is the first write to fail."""
    index_dir = small_disk / "idx"
    command = [sys.executable, "-m", "ingest", "--corpus", str(tiny_corpus), "--index", str(index_dir)]
    env = {**os.environ, "KB_EMBEDDER": "fake"}
    subprocess.run(command, cwd=REPO, env=env, capture_output=True, check=True)
    before = current_version(index_dir)
    (tiny_corpus / "new.txt").write_text("A brand new document about knees.", encoding="utf-8")
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    (small_disk / "filler").write_bytes(b"\0" * (free - 4096))
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot write a new version of the index in {index_dir}: no space left"), last
    assert current_version(index_dir) == before and load(index_dir).manifest.documents == 3
    assert not list(index_dir.glob(".tmp-*"))


def test_second_publisher_is_refused_while_lock_held(tmp_path, tiny_corpus, fake_embedder):
    with publish_lock(tmp_path / "idx"):
        with pytest.raises(IndexBusy, match=r"being updated by process \d+"):
            build(tiny_corpus, tmp_path / "idx", fake_embedder)


def test_only_current_and_previous_versions_are_kept(tiny_corpus, tmp_path, fake_embedder):
    index_dir = tmp_path / "idx"
    names = []
    for text in ["A brand new document about knees.", "Another one about ankles.", "A third about wrists."]:
        build(tiny_corpus, index_dir, fake_embedder)
        names.append(current_version(index_dir).name)
        (tiny_corpus / f"{len(names)}.txt").write_text(text, encoding="utf-8")
    assert sorted(p.name for p in index_dir.glob("v-*")) == sorted(names[-2:])


def test_every_file_and_folder_is_flushed_before_the_pointer_switches(
    tiny_corpus, tmp_path, fake_embedder, monkeypatch
):
    """Durability on power loss: data, then the names of the data, then CURRENT."""
    import index.store.pointer as pointer
    import index.store.writer as writer

    index_dir = tmp_path / "idx"
    steps: list[tuple[str, Path]] = []
    real_fsync, real_replace = writer.fsync, os.replace
    for module in (pointer, writer):
        monkeypatch.setattr(module, "fsync", lambda path: (steps.append(("fsync", Path(path))), real_fsync(path)))
    monkeypatch.setattr(os, "replace", lambda a, b: (steps.append(("replace", Path(b))), real_replace(a, b)))
    build(tiny_corpus, index_dir, fake_embedder)
    switch = steps.index(("replace", index_dir / "CURRENT"))
    flushed = [path for step, path in steps[:switch] if step == "fsync"]
    staging = next(p for p in flushed if p.name.startswith(".tmp-"))
    version = current_version(index_dir)
    expected = {staging / p.relative_to(version) for p in version.rglob("*")} | {staging}
    assert expected <= set(flushed)
    for path in expected:  # a folder is flushed after everything in it
        inside = [i for i, p in enumerate(flushed) if p.parent == path]
        assert all(i < flushed.index(path) for i in inside)
    assert flushed[-2:] == [index_dir, index_dir / next(p.name for p in flushed if p.name.startswith(".CURRENT."))]


def ask_cli(index_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "index", "query", "hip flexors", "--index", str(index_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("how", BREAKS)
def test_cli_names_the_broken_file_and_the_fix(how, tiny_corpus, tmp_path, fake_embedder):
    index_dir = tmp_path / "idx"
    build(tiny_corpus, index_dir, fake_embedder)
    broken = break_index(index_dir, how)
    result = ask_cli(index_dir)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert broken in result.stderr
    assert f"python -m ingest --index {index_dir}" in result.stderr


def test_cli_refuses_an_index_built_with_another_model(tiny_corpus, tmp_path):
    index_dir = tmp_path / "idx"
    build(tiny_corpus, index_dir, OtherModelEmbedder())
    result = ask_cli(index_dir)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"index {index_dir} was built with model 'test/other-model'" in result.stderr
    assert "sentence-transformers/all-MiniLM-L6-v2" in result.stderr
    assert f"python -m ingest --index {index_dir}" in result.stderr


def _clustered(count: int, dimensions: int, seed: int) -> np.ndarray:
    """Unit vectors around 40 random centres, like embeddings of texts on 40 topics."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dimensions))
    points = centres[rng.integers(0, 40, count)] + 0.6 * rng.normal(size=(count, dimensions))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def approximate(tmp_path_factory) -> Path:
    """3,000 passages with an approximate index (exact_search_limit lowered to 1,000)."""
    index_dir = tmp_path_factory.mktemp("ann") / "idx"
    _publish_synthetic(index_dir, _clustered(3000, 64, seed=0))
    return index_dir


def _publish_synthetic(index_dir: Path, vectors: np.ndarray, parallel_map=map) -> None:
    """One passage per vector, past the lowered exact_search_limit of 1,000."""
    count = len(vectors)
    passages = [
        Passage(text_id(f"passage {i}"), f"passage {i}", (Location("d", "d.txt", i, i + 1, 1),)) for i in range(count)
    ]
    with publish_lock(index_dir):
        publish(
            index_dir,
            VersionContent(
                passages=passages,
                vectors=vectors,
                sentences=SentenceVectors(vectors, np.arange(count + 1)),
                documents=[DocumentInfo("d", "d.txt", "0", count, count)],
                sources={},
                texts=["".join(f"passage {i}" for i in range(count))],
            ),
            BuildInfo(model="synthetic", settings=Settings(exact_search_limit=1000), corpus="synthetic"),
            parallel_map=parallel_map,
        )


class _Given:
    """An embedder that returns the query vector it is told to (for searching synthetic vectors)."""

    name, dimensions, max_tokens = "synthetic", 64, 256

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    def encode(self, texts, progress=None) -> np.ndarray:
        return self.vectors[[int(t) for t in texts]]

    def count_tokens(self, text: str) -> int:
        return 1


def test_large_collection_gets_an_approximate_index_with_high_recall(approximate):
    stored = load(approximate)
    assert stored.manifest.vector_index == "IVF110,SQ8" and not stored.dense.exact
    queries = _clustered(200, 64, seed=1)
    searcher = Searcher(stored, _Given(queries))
    exact = np.argsort(-(stored.dense.vectors().astype(np.float32) @ queries.T), axis=0)[:10].T
    found = [searcher.rank(str(q), queries[q], mode="dense").rows[:10] for q in range(len(queries))]
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
    assert recall >= 0.95
    # Similarities are exact (re-scored from the stored copy), not the quantised ones.
    ranking = searcher.rank("0", queries[0], mode="dense")
    row = ranking.rows[0]
    assert ranking.parts[row].passage_cosine == pytest.approx(
        float(stored.dense.vectors()[row].astype(np.float32) @ queries[0]), abs=1e-6
    )


def test_approximate_index_is_served_from_lists_on_disk_like_one_built_in_memory(approximate):
    stored = load(approximate)
    assert "lists.ivfdata" in stored.manifest.files  # hashed and verified like every other file
    ivf = faiss.extract_index_ivf(stored.dense.faiss)
    assert isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists)
    assert stored.dense.on_disk
    # The same training sample, codec and probes, built and searched in memory.
    copy = np.asarray(stored.dense.vectors(), dtype=np.float32)
    plan = ivf_plan(stored.manifest.vector_index)
    in_memory = train(sample_rows([copy], plan.sample, plan.seed), plan)
    in_memory.add(copy)
    in_memory.nprobe = ivf.nprobe
    queries = _clustered(50, 64, seed=2)
    mapped_scores, mapped_rows = stored.dense.faiss.search(queries, 10)
    scores, rows = in_memory.search(queries, 10)
    assert (mapped_rows == rows).all() and np.allclose(mapped_scores, scores)


def test_approximate_index_from_many_parts_equals_one_from_a_single_part(approximate, tmp_path, monkeypatch):
    one = load(approximate)
    added: list[int] = []

    def recording_map(function, *iterables):
        for args in zip(*iterables):
            added.append(len(args[1]))
            yield function(*args)

    monkeypatch.setattr(dense, "PART_ROWS", 700)
    _publish_synthetic(tmp_path / "idx", one.dense.vectors().astype(np.float32), recording_map)
    many = load(tmp_path / "idx")
    assert added == [700, 700, 700, 700, 200]
    queries = _clustered(50, 64, seed=3)
    assert [a.tolist() for a in many.dense.faiss.search(queries, 10)] == [
        a.tolist() for a in one.dense.faiss.search(queries, 10)
    ]


def _mapped_files(stored) -> set[str]:
    """The files of a loaded version (as its manifest names them) that this process has memory-mapped."""
    gc.collect()  # a map dropped by a reference cycle is not one that stays
    fields = [line.split(maxsplit=5) for line in Path("/proc/self/maps").read_text().splitlines()]
    paths = {Path(f[5]) for f in fields if len(f) == 6}
    names = {path.relative_to(stored.path).as_posix() for path in paths if path.is_relative_to(stored.path)}
    return names & set(stored.manifest.files)


def test_questions_read_rows_of_the_large_files_without_mapping_them(approximate, monkeypatch):
    # A mapped file keeps every page a question touched (and the page-cache folio around it) resident
    # in the process: at a million passages that grew to 5 GB over 1,000 questions (index.rowfile).
    monkeypatch.setattr(rowfile, "MAP_BELOW", 0)  # every file counts as large
    stored = load(approximate)
    searcher = Searcher(stored, _Given(_clustered(20, 64, seed=4)))
    for question in range(20):
        answer = searcher.search(str(question))
        assert answer.hits and answer.hits[0].answer is not None
    assert stored.texts.text(0).startswith("passage 0")
    searcher.mentions("passage 7")
    assert _mapped_files(stored) <= {"lists.ivfdata", "locations.npy"}
    assert "lists.ivfdata" in _mapped_files(stored)  # the check sees a map when there is one


def test_rows_read_from_disk_answer_as_memory_maps_did(approximate, monkeypatch):
    monkeypatch.setattr(rowfile, "MAP_BELOW", 0)
    questions = _clustered(20, 64, seed=5)
    answers = {}
    for mapped in (True, False):
        monkeypatch.setattr(rowfile, "MAPPED", mapped)
        stored = load(approximate)
        assert isinstance(stored.sentences.vectors, np.memmap) == mapped
        searcher = Searcher(stored, _Given(questions))
        answers[mapped] = [searcher.search(str(q)) for q in range(len(questions))]
        answers[mapped].append(stored.texts.text(0))
    assert answers[True] == answers[False]


def test_small_collection_searches_exactly(tiny_corpus, tmp_path, fake_embedder):
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    stored = load(tmp_path / "idx")
    assert stored.manifest.vector_index == "Flat" and stored.dense.exact
    searcher = Searcher(stored, fake_embedder)
    for question in ["spinal fusion", "hip flexors stretch", "kyphoplasty balloon"]:
        vector = fake_embedder.encode([question])[0]
        ranking = searcher.rank(question, vector, mode="dense")
        similarity = stored.dense.vectors() @ vector
        assert ranking.rows == sorted(range(len(similarity)), key=lambda r: (-similarity[r], r))
        assert [ranking.parts[r].passage_cosine for r in ranking.rows] == pytest.approx(
            similarity[ranking.rows].tolist()
        )


def test_exact_search_limit_is_validated():
    with pytest.raises(ValueError, match="exact_search_limit must be at least 1000, got 10"):
        Settings(exact_search_limit=10)


def test_probes_are_a_64th_of_the_lists_but_at_least_32():
    # bench/RESULTS.md: at 300k passages (1,095 lists) 17 probes gave recall@10 0.935, 32 gave 0.964.
    assert [dense.nprobe_for(lists) for lists in (20, 1095, 2000, 6400)] == [20, 32, 32, 100]


def test_an_update_that_changes_no_passage_links_the_unchanged_files(built, tiny_corpus, fake_embedder):
    before = load(built.parent)
    (tiny_corpus / "fractures.txt").touch()  # a new time, the same bytes: the sources change, nothing else
    (tiny_corpus / "empty.txt").write_text("", encoding="utf-8")  # a file that is skipped
    report = build(tiny_corpus, built.parent, fake_embedder)
    after = load(built.parent)
    assert report.published and after.path != before.path and after.passages == before.passages
    linked = {
        name for name in after.manifest.files if (after.path / name).stat().st_ino == (before.path / name).stat().st_ino
    }
    assert {"vectors.faiss", "sentences.npy", "passages.jsonl", "locations.npy", "keyword/terms.txt"} <= linked
    assert "sources.json" not in linked and "manifest.json" not in linked
    verify(built.parent)


def test_a_version_folder_that_links_out_of_the_index_folder_is_refused(built, tmp_path):
    """Issue 23, N12. Before: the version was loaded through the link, from wherever it pointed."""
    index_dir = built.parent
    outside = tmp_path / "elsewhere" / built.name
    outside.parent.mkdir()
    shutil.move(built, outside)
    os.symlink(outside, built)
    with pytest.raises(PointerDamaged, match=r"is a link to .*elsewhere.*, outside the index folder") as caught:
        load(index_dir)
    assert caught.value.fix.startswith("remove the link, then rebuild it with: python -m ingest --index")
    code = subprocess.run(
        [sys.executable, "-m", "index", "info", "--index", str(index_dir)], cwd=REPO, capture_output=True, text=True
    )
    assert code.returncode == 1 and "outside the index folder" in code.stderr and "Traceback" not in code.stderr


def test_a_rebuild_replaces_a_linked_version_and_removes_only_the_link(built, tiny_corpus, fake_embedder, tmp_path):
    index_dir = built.parent
    outside = tmp_path / "elsewhere"
    shutil.move(built, outside)
    os.symlink(outside, built)
    (tiny_corpus / "new.txt").write_text("A new page about elbows.", encoding="utf-8")
    build(tiny_corpus, index_dir, fake_embedder)
    assert load(index_dir).path != built
    (tiny_corpus / "newer.txt").write_text("Another page about shoulders.", encoding="utf-8")
    build(tiny_corpus, index_dir, fake_embedder)  # the link is no longer kept as the previous version
    assert not built.is_symlink() and (outside / "manifest.json").is_file()  # what it pointed at is left alone


def files_holding(folder: Path, word: bytes) -> list[str]:
    """Every file under `folder` whose bytes hold `word` (as grep -r would find it)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and word in p.read_bytes())


def test_a_deleted_documents_text_is_gone_from_disk_after_two_builds(tiny_corpus, tmp_path, fake_embedder):
    """Issue 23, N7. Before: the second build found the index up to date and left the version before the
    delete on disk, its texts, passages and keyword terms holding the deleted text."""
    index_dir = tmp_path / "idx"
    (tiny_corpus / "secret.txt").write_text("The quizzleflap protocol rests the knee.", encoding="utf-8")
    build(tiny_corpus, index_dir, fake_embedder)
    assert files_holding(index_dir, b"quizzleflap")
    (tiny_corpus / "secret.txt").unlink()
    assert build(tiny_corpus, index_dir, fake_embedder).published
    assert not build(tiny_corpus, index_dir, fake_embedder).published  # up to date: it still clears old versions
    assert files_holding(index_dir, b"quizzleflap") == []
    assert len(list(index_dir.glob("v-*"))) == 1


def test_a_version_a_reader_holds_is_kept_until_it_lets_go(tiny_corpus, tmp_path, fake_embedder):
    index_dir = tmp_path / "idx"
    build(tiny_corpus, index_dir, fake_embedder)
    reader = load(index_dir)
    (tiny_corpus / "new.txt").write_text("A page about elbows.", encoding="utf-8")
    build(tiny_corpus, index_dir, fake_embedder)
    build(tiny_corpus, index_dir, fake_embedder)
    assert reader.path.is_dir() and len(reader.documents) == 3  # still held: kept, and it still answers
    held = reader.path
    del reader
    build(tiny_corpus, index_dir, fake_embedder)
    assert not held.exists()


@pytest.mark.parametrize(("keep", "left"), [(0, 1), (1, 2), (2, 3)])
def test_at_most_keep_versions_held_by_readers_are_kept(tiny_corpus, tmp_path, fake_embedder, keep, left):
    index_dir = tmp_path / "idx"
    readers = []
    for number in range(4):
        (tiny_corpus / f"{number}.txt").write_text(f"Page {number} about wrists.", encoding="utf-8")
        build(tiny_corpus, index_dir, fake_embedder, keep_versions=keep)
        readers.append(load(index_dir))  # every version stays held
    assert len(list(index_dir.glob("v-*"))) == left
    assert readers[0].texts.text(0)  # a reader whose version was removed still reads what it opened


def test_keep_versions_comes_from_the_environment():
    from index.config import Config

    assert Config.resolve(environ={}).keep_versions == 1
    assert Config.resolve(environ={"KB_KEEP_VERSIONS": "3"}).keep_versions == 3
    with pytest.raises(ValueError, match=r"KB_KEEP_VERSIONS must be a whole number, 0 or more; got '-1'"):
        Config.resolve(environ={"KB_KEEP_VERSIONS": "-1"})
