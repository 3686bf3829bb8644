"""Ingest pipeline: incremental updates re-embed only new text and match a full rebuild."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from index.embed.fake import FakeEmbedder
from index.records import Settings
from index.search.searcher import Searcher
from index.store.pointer import current_version
from index.store.reader import load
from ingest.documents import Status, list_documents
from ingest.pipeline import Rules, SkippedFiles, Stage, build, changed_sources
from tests.helpers import REPO, TINY_DOCS, as_unprivileged, break_index, write_corpus


def test_rerun_without_changes_publishes_nothing(tiny_corpus, tmp_path, fake_embedder):
    first = build(tiny_corpus, tmp_path / "idx", fake_embedder)
    again = build(tiny_corpus, tmp_path / "idx", fake_embedder)
    assert first.published and not again.published
    assert again.index_path == first.index_path
    assert "up to date" in again.notes[0]


def test_adding_a_document_embeds_only_its_passages(tiny_corpus, tmp_path, fake_embedder):
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    fake_embedder.encoded = 0
    (tiny_corpus / "knees.txt").write_text("Knee pain after running often comes from the kneecap.", encoding="utf-8")
    report = build(tiny_corpus, tmp_path / "idx", fake_embedder)
    assert report.embedded == 1 and fake_embedder.encoded == 1
    assert report.reused == report.passages - 1


def test_incremental_equals_full_rebuild(tiny_corpus, tmp_path, fake_embedder):
    build(tiny_corpus, tmp_path / "inc", fake_embedder)
    (tiny_corpus / "knees.txt").write_text("Knee pain after running often comes from the kneecap.", encoding="utf-8")
    (tiny_corpus / "hips" / "flexors.md").unlink()
    build(tiny_corpus, tmp_path / "inc", fake_embedder)
    build(tiny_corpus, tmp_path / "full", fake_embedder)
    inc, full = load(tmp_path / "inc"), load(tmp_path / "full")
    assert inc.passages == full.passages
    assert (inc.dense.vectors() == full.dense.vectors()).all()
    for question in ["knee pain running", "hip flexors", "spinal fusion"]:
        a = Searcher(inc, fake_embedder).search(question)
        b = Searcher(full, fake_embedder).search(question)
        assert a == b


def test_removed_document_disappears_from_results(tiny_corpus, tmp_path, fake_embedder):
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    (tiny_corpus / "hips" / "flexors.md").unlink()
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    answer = Searcher(load(tmp_path / "idx"), fake_embedder).search("hip flexors knee icing", k=10)
    assert all(loc.source != "hips/flexors.md" for h in answer.hits for loc in h.passage.locations)


def test_changed_sources_lists_added_edited_removed(tiny_corpus, tmp_path, fake_embedder):
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    stored = load(tmp_path / "idx")
    assert changed_sources(tiny_corpus, stored) == []
    (tiny_corpus / "new.md").write_text("new", encoding="utf-8")
    (tiny_corpus / "copy.txt").write_text("edited text", encoding="utf-8")
    (tiny_corpus / "fractures.txt").unlink()
    assert changed_sources(tiny_corpus, stored) == ["copy.txt", "fractures.txt", "new.md"]


def test_a_file_that_cannot_be_opened_is_a_change_and_is_reported(tiny_corpus, tmp_path, fake_embedder):
    """A broken link added after a build was invisible: "up to date", --strict passed, the page said "pending"."""
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    (tiny_corpus / "broken.txt").symlink_to(tiny_corpus / "missing.txt")
    assert changed_sources(tiny_corpus, load(tmp_path / "idx")) == ["broken.txt"]
    with pytest.raises(SkippedFiles, match="broken.txt"):
        build(tiny_corpus, tmp_path / "idx", fake_embedder, rules=Rules(strict=True))
    report = build(tiny_corpus, tmp_path / "idx", fake_embedder)
    assert report.published and [s.source for s in report.skipped] == ["broken.txt"]
    assert changed_sources(tiny_corpus, load(tmp_path / "idx")) == []  # still broken: nothing new
    (entry,) = [e for e in list_documents(tiny_corpus, load(tmp_path / "idx")) if e.source == "broken.txt"]
    assert entry.status is Status.SKIPPED and "cannot read" in entry.reason
    assert not build(tiny_corpus, tmp_path / "idx", fake_embedder).published
    (tiny_corpus / "broken.txt").unlink()
    report = build(tiny_corpus, tmp_path / "idx", fake_embedder)
    assert report.published and report.skipped == ()


def test_progress_reports_every_stage(tiny_corpus, tmp_path, fake_embedder):
    events = []
    build(tiny_corpus, tmp_path / "idx", fake_embedder, progress=lambda *e: events.append(e))
    stages = [e[0] for e in events]
    assert stages.index("read") < stages.index("embed") < stages.index("publish")
    assert ("read", 3, 3) in events
    embeds = [e for e in events if e[0] == "embed"]
    assert embeds[-1][1] == embeds[-1][2] > 0


def test_empty_corpus_is_an_error(tmp_path, fake_embedder):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no text found"):
        build(tmp_path / "empty", tmp_path / "idx", fake_embedder)


def test_missing_corpus_is_an_error(tmp_path, fake_embedder):
    with pytest.raises(FileNotFoundError, match="corpus .* does not exist"):
        build(tmp_path / "nope", tmp_path / "idx", fake_embedder)


def test_strict_refuses_to_publish_when_a_file_is_skipped(tiny_corpus, tmp_path, fake_embedder):
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    before = load(tmp_path / "idx").path
    (tiny_corpus / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    with pytest.raises(SkippedFiles, match="broken.pdf"):
        build(tiny_corpus, tmp_path / "idx", fake_embedder, rules=Rules(strict=True))
    assert load(tmp_path / "idx").path == before
    report = build(tiny_corpus, tmp_path / "idx", fake_embedder)  # lenient: publishes, reports the file
    assert [s.source for s in report.skipped] == ["broken.pdf"]
    with pytest.raises(SkippedFiles, match="broken.pdf"):  # an up-to-date index with skips is refused too
        build(tiny_corpus, tmp_path / "idx", fake_embedder, rules=Rules(strict=True))


def _records(path, records) -> None:
    path.write_text(
        "".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n" for i, t in records), encoding="utf-8"
    )


RECORDS = [
    (f"r{i}", f"Record {i} says that {topic} helps with {ailment}. A second sentence adds detail number {i}.")
    for i, (topic, ailment) in enumerate(
        [("rest", "fractures"), ("stretching", "hip pain"), ("icing", "swelling"), ("walking", "back pain")]
    )
]


def test_appending_a_record_chunks_only_the_new_record_and_equals_a_rebuild(tmp_path, fake_embedder, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _records(corpus / "records.jsonl", RECORDS)
    build(corpus, tmp_path / "inc", fake_embedder)
    added = ("r9", "Swimming eases knee pain. Water carries the body's weight, so joints move without load.")
    _records(corpus / "records.jsonl", RECORDS + [added])
    counted: list[str] = []
    monkeypatch.setattr(fake_embedder, "count_tokens", lambda text: counted.append(text) or len(text.split()) + 2)
    fake_embedder.encoded = 0
    report = build(corpus, tmp_path / "inc", fake_embedder)
    assert counted and all(text in added[1] for text in counted)  # the unchanged records were not chunked again
    assert report.embedded == fake_embedder.encoded == 1  # one pass for the passage and its two sentences
    build(corpus, tmp_path / "full", fake_embedder)
    inc, full = load(tmp_path / "inc"), load(tmp_path / "full")
    assert inc.passages == full.passages and inc.documents == full.documents
    assert (inc.dense.vectors() == full.dense.vectors()).all()
    assert (inc.sentences.starts == full.sentences.starts).all()
    assert np.array_equal(inc.sentences.vectors, full.sentences.vectors)


def test_incremental_sentence_vectors_equal_a_rebuild_after_edits(tiny_corpus, tmp_path, fake_embedder):
    build(tiny_corpus, tmp_path / "inc", fake_embedder)
    (tiny_corpus / "fractures.txt").write_text(
        "Kyphoplasty inflates a balloon in the compressed vertebra. It restores some lost height.\n\n"
        "Spinal fusion joins two vertebrae with bone grafts and screws.",
        encoding="utf-8",
    )
    (tiny_corpus / "copy.txt").unlink()
    build(tiny_corpus, tmp_path / "inc", fake_embedder)
    build(tiny_corpus, tmp_path / "full", fake_embedder)
    inc, full = load(tmp_path / "inc"), load(tmp_path / "full")
    assert inc.passages == full.passages
    assert (inc.sentences.starts == full.sentences.starts).all()
    assert np.array_equal(inc.sentences.vectors, full.sentences.vectors)
    assert inc.manifest.sentences == full.manifest.sentences > 0


def test_a_damaged_index_is_rebuilt_with_a_note_and_a_missing_one_without(tiny_corpus, tmp_path, fake_embedder):
    first = build(tiny_corpus, tmp_path / "idx", fake_embedder)
    assert first.published and first.notes == ()  # nothing to reuse, nothing to say
    broken = break_index(tmp_path / "idx", "tampered")
    report = build(tiny_corpus, tmp_path / "idx", fake_embedder)
    assert report.published and report.reused == 0
    assert report.notes[0].startswith(f"previous index not reused: index file {broken} does not match its manifest")
    load(tmp_path / "idx")  # the rebuilt index verifies


def test_stages_have_one_label_for_the_terminal_and_the_app():
    assert [stage.label for stage in Stage] == ["Reading files", "Embedding passages", "Publishing the index"]
    assert Stage.from_str("embed") is Stage.EMBED


# A document is (source file, record id); no file can take over another's identity ---------------

ZEBRA_FILE = "Zebras sleep standing up, and only lie down for deep sleep when the herd keeps watch."
ZEBRA_RECORD = {
    "_id": "zebra-guide.txt",
    "title": "Zebra guide",
    "text": "Zebras never sleep; they are striped horses that can fly at night.",
}


def zebra_corpus(root):
    (root / "uploads").mkdir(parents=True)
    (root / "zebra-guide.txt").write_text(ZEBRA_FILE, encoding="utf-8")
    (root / "uploads" / "a.jsonl").write_text(json.dumps(ZEBRA_RECORD) + "\n", encoding="utf-8")
    return root


def test_a_record_named_like_a_file_does_not_shadow_it(tmp_path, fake_embedder):
    """The reproduction: an uploaded record whose _id is another file's path, sorted before it."""
    corpus = zebra_corpus(tmp_path / "corpus")
    report = build(corpus, tmp_path / "idx", fake_embedder)
    assert report.skipped == () and report.documents == 2
    stored = load(tmp_path / "idx")
    assert {(d.source, d.doc_id) for d in stored.documents} == {
        ("uploads/a.jsonl", "zebra-guide.txt"),
        ("zebra-guide.txt", "zebra-guide.txt"),
    }
    answer = Searcher(stored, fake_embedder).search("do zebras sleep standing up", k=2)
    cited = [hit.passage.location.cite() for hit in answer.hits]
    assert cited == ["zebra-guide.txt, line 1", "uploads/a.jsonl [zebra-guide.txt], line 1"]
    assert answer.hits[0].passage.text == ZEBRA_FILE
    # --json keeps doc_id as the record id (BEIR qrels are keyed by it); source tells the two apart.
    hits = answer.to_json()["hits"]
    assert [(h["source"], h["doc_id"]) for h in hits] == [
        ("zebra-guide.txt", "zebra-guide.txt"),
        ("uploads/a.jsonl", "zebra-guide.txt"),
    ]


def test_context_stays_within_its_own_document_when_ids_are_equal(tmp_path, fake_embedder):
    corpus = zebra_corpus(tmp_path / "corpus")
    searcher = Searcher(load(build(corpus, tmp_path / "idx", fake_embedder).index_path.parent), fake_embedder)
    for passage in searcher.passages:
        neighbours = searcher.context(passage.location, before=5, after=5)
        assert {n.location.source for n in neighbours} == {passage.location.source}
        assert [n.is_hit for n in neighbours].count(True) == 1


def test_an_unchanged_file_keeps_its_chunks_when_another_file_reuses_its_id(tmp_path, fake_embedder):
    corpus = zebra_corpus(tmp_path / "corpus")
    build(corpus, tmp_path / "inc", fake_embedder)
    (corpus / "uploads" / "b.jsonl").write_text(
        json.dumps({"_id": "zebra-guide.txt", "text": "Zebra stripes confuse biting flies."}) + "\n", encoding="utf-8"
    )
    build(corpus, tmp_path / "inc", fake_embedder)
    build(corpus, tmp_path / "full", fake_embedder)
    inc, full = load(tmp_path / "inc"), load(tmp_path / "full")
    assert inc.passages == full.passages and inc.documents == full.documents and len(inc.documents) == 3


def test_a_repeated_id_within_one_file_is_reported_and_the_same_id_in_two_files_is_not(tmp_path, fake_embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    records = [
        {"_id": "r1", "text": "Okapi live in the rainforest of the Congo."},
        {"_id": "r2", "text": "Giraffes sleep less than two hours a day."},
        {"_id": "r1", "text": "A second record that claims the first one's id."},
    ]
    (corpus / "a.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    (corpus / "b.jsonl").write_text(json.dumps({"_id": "r1", "text": "Zebras are striped."}) + "\n", encoding="utf-8")
    report = build(corpus, tmp_path / "idx", fake_embedder)
    assert [(s.source, s.reason) for s in report.skipped] == [
        ("a.jsonl:3", "duplicate record id 'r1' (first on line 1)")
    ]
    documents = load(tmp_path / "idx").documents
    assert [(d.source, d.doc_id) for d in documents] == [("a.jsonl", "r1"), ("a.jsonl", "r2"), ("b.jsonl", "r1")]


# The character cap reaches indexes built before it ----------------------------------------------

LETTER_RUN = "Blob header sentence about nothing. " + "a" * 200_000


def test_an_index_cut_by_tokens_only_is_cut_again_by_characters(tmp_path, fake_embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "blob.txt").write_text(LETTER_RUN, encoding="utf-8")
    (corpus / "hips.txt").write_text("The hip flexors lift the knee toward the body.", encoding="utf-8")
    build(corpus, tmp_path / "idx", fake_embedder, settings=Settings(max_chars=None))
    assert max(len(p.text) for p in load(tmp_path / "idx").passages) == len(LETTER_RUN)
    report = build(corpus, tmp_path / "idx", fake_embedder)  # the same files, today's settings
    assert report.published
    stored = load(tmp_path / "idx")
    assert max(len(p.text) for p in stored.passages) <= 4000 and stored.manifest.settings.max_chars == 4000


def test_a_manifest_from_before_the_cap_reads_as_uncapped(tiny_corpus, tmp_path, fake_embedder):
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    manifest = current_version(tmp_path / "idx") / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    del data["settings"]["max_chars"]
    manifest.write_text(json.dumps(data), encoding="utf-8")
    assert load(tmp_path / "idx").manifest.settings.max_chars is None
    assert build(tiny_corpus, tmp_path / "idx", fake_embedder).published  # not "up to date": re-cut


# A file unchanged since the live index was built is not read again ------------------------------


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The names of the files each build reads, in order."""
    import ingest.pipeline as pipeline

    names: list[str] = []
    real = pipeline.read_file

    def recording(path, root, confined=True):
        names.append(path.relative_to(root).as_posix())
        return real(path, root, confined)

    monkeypatch.setattr(pipeline, "read_file", recording)
    return names


def test_a_refused_file_is_not_read_again_until_it_changes(tmp_path, fake_embedder, reads):
    from tests.bad_corpus import write_paragraphs_docx

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "hips.txt").write_text("The hip flexors lift the knee toward the body.", encoding="utf-8")
    write_paragraphs_docx(corpus / "many.docx", 5000)
    first = build(corpus, tmp_path / "idx", fake_embedder)
    [refused] = first.skipped
    assert refused.source == "many.docx" and "decompression bomb" in refused.reason
    assert sorted(reads) == ["hips.txt", "many.docx"]
    reads.clear()
    (corpus / "knees.txt").write_text("Knee pain after running often comes from the kneecap.", encoding="utf-8")
    second = build(corpus, tmp_path / "idx", fake_embedder)
    assert reads == ["knees.txt"] and second.published
    assert second.skipped == (refused,) and load(tmp_path / "idx").manifest.skipped == (refused,)
    reads.clear()
    write_paragraphs_docx(corpus / "many.docx", 6000)  # changed: read, and refused again
    third = build(corpus, tmp_path / "idx", fake_embedder)
    assert reads == ["many.docx"] and [s.source for s in third.skipped] == ["many.docx"]


def test_only_changed_files_are_read_and_the_index_equals_a_full_rebuild(tiny_corpus, tmp_path, fake_embedder, reads):
    records = [
        {"_id": "r1", "title": "Knees", "text": "The kneecap glides in a groove of the thigh bone."},
        {"_id": "r1", "text": "A repeated id, reported."},
        {"_id": "r2", "text": "Spinal fusion joins two vertebrae with bone grafts and screws!"},  # a near copy
    ]
    (tiny_corpus / "records.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n{broken\n")
    (tiny_corpus / "empty.txt").write_bytes(b"")
    build(tiny_corpus, tmp_path / "inc", fake_embedder)
    reads.clear()
    (tiny_corpus / "knees.txt").write_text("Knee pain after running often comes from the kneecap.", encoding="utf-8")
    os.utime(tiny_corpus / "hips" / "flexors.md", ns=(1, 1))  # a new time, the same bytes: hashed, not read
    build(tiny_corpus, tmp_path / "inc", fake_embedder)
    # fractures.txt and records.jsonl hold copies of a passage first found in copy.txt; a copy's own
    # text is not kept in the index, so they are read. Nothing else is: not empty.txt, not flexors.md.
    assert sorted(reads) == ["fractures.txt", "knees.txt", "records.jsonl"]
    reads.clear()
    build(tiny_corpus, tmp_path / "full", fake_embedder)
    inc, full = load(tmp_path / "inc"), load(tmp_path / "full")
    assert inc.passages == full.passages and inc.documents == full.documents
    assert inc.manifest.skipped == full.manifest.skipped and len(full.manifest.skipped) == 3
    assert (inc.dense.vectors() == full.dense.vectors()).all()
    assert inc.sources == full.sources


def test_an_update_tokenizes_and_hashes_only_new_passages(tiny_corpus, tmp_path, fake_embedder, monkeypatch):
    from index.retrievers import keyword
    from ingest import dedup

    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    tokenized, signed = [], []
    real_tokenize, real_signature = keyword.tokenize, dedup._signature
    monkeypatch.setattr(keyword, "tokenize", lambda text: tokenized.append(text) or real_tokenize(text))
    monkeypatch.setattr(dedup, "_signature", lambda grams: signed.append(len(grams)) or real_signature(grams))
    (tiny_corpus / "knees.txt").write_text("Knee pain after running often comes from the kneecap.", encoding="utf-8")
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    assert tokenized == ["Knee pain after running often comes from the kneecap."] and len(signed) == 1
    monkeypatch.undo()
    build(tiny_corpus, tmp_path / "full", fake_embedder)
    inc, full = load(tmp_path / "idx"), load(tmp_path / "full")
    assert inc.passages == full.passages and (inc.signatures.rows == full.signatures.rows).all()
    for question in ["knee pain running", "hip flexors", "spinal fusion"]:
        assert Searcher(inc, fake_embedder).search(question) == Searcher(full, fake_embedder).search(question)


def _read_only_index_folder(monkeypatch, index_dir):
    """Opening the index folder's lock fails as on a read-only mount (root writes through chmod, so simulated)."""
    import builtins
    import errno

    real_open = builtins.open

    def open_(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(index_dir / ".lock"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)


def test_a_read_only_index_folder_is_one_clear_line_with_the_fix(
    tiny_corpus, tmp_path, monkeypatch, capsys, thread_counts_restored
):
    """It printed "error: [Errno 30] Read-only file system: '…/.lock'" (issue 23, "Also")."""
    from index.errors import IndexWriteFailed
    from ingest.__main__ import main as ingest_main

    index_dir = tmp_path / "idx"
    index_dir.mkdir()
    _read_only_index_folder(monkeypatch, index_dir)
    with pytest.raises(IndexWriteFailed, match="cannot write to the index folder"):
        build(tiny_corpus, index_dir, FakeEmbedder())
    monkeypatch.setenv("KB_EMBEDDER", "fake")
    assert ingest_main(["--corpus", str(tiny_corpus), "--index", str(index_dir)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Errno" not in err[0] and ".lock" not in err[0]
    assert err[0] == (
        f"error: cannot write to the index folder {index_dir} (read-only file system); "
        "make it writable, or build into another folder with --index DIR (or KB_INDEX=DIR)"
    )


@pytest.fixture
def open_folder():
    """A folder that an unprivileged user may write (pytest's own are root's alone, 0700)."""
    import shutil
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="kb-unprivileged-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder)


def test_a_file_that_becomes_unreadable_is_reported_and_leaves_the_index(open_folder):
    """After chmod 000 a rebuild said "index is up to date" and the text kept answering (issue 23, N4).

    Size and time are unchanged, so only trying to open the file shows it. The
    build runs as an ordinary user (`as_unprivileged`): root reads through any mode.
    """
    corpus = write_corpus(open_folder / "corpus", TINY_DOCS)
    index_dir = open_folder / "idx"
    as_unprivileged(lambda: build(corpus, index_dir, FakeEmbedder()))
    (corpus / "fractures.txt").chmod(0)
    assert as_unprivileged(lambda: changed_sources(corpus, load(index_dir))) == ["fractures.txt"]
    report = as_unprivileged(lambda: build(corpus, index_dir, FakeEmbedder()))
    assert report.published and "index is up to date" not in report.notes
    assert [(s.source, s.reason) for s in report.skipped] == [("fractures.txt", "permission denied")]
    stored = load(index_dir)
    assert "fractures.txt" not in {d.source for d in stored.documents}
    assert not any("Kyphoplasty" in p.text for p in stored.passages)
    again = as_unprivileged(lambda: build(corpus, index_dir, FakeEmbedder()))
    assert not again.published  # still unreadable: nothing new to do
    (corpus / "fractures.txt").chmod(0o644)
    mended = as_unprivileged(lambda: build(corpus, index_dir, FakeEmbedder()))
    assert mended.published and mended.skipped == ()
    assert "fractures.txt" in {d.source for d in load(index_dir).documents}


def test_a_hard_link_is_the_file_itself_and_is_published(tiny_corpus, tmp_path, fake_embedder):
    """The decision of issue 23, N8 (README, "What the corpus folder holds is published"), pinned.

    A hard link cannot be told from a copy: whoever can write the corpus folder
    publishes what they can read. A symbolic link out of the corpus is skipped.
    """
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("Okapi are relatives of giraffes.", encoding="utf-8")
    os.link(outside, tiny_corpus / "linked.txt")
    (tiny_corpus / "pointer.txt").symlink_to(outside)
    report = build(tiny_corpus, tmp_path / "idx", fake_embedder)
    assert "linked.txt" in {d.source for d in load(tmp_path / "idx").documents}
    assert [(s.source, s.reason) for s in report.skipped] == [("pointer.txt", "link points outside the corpus")]
    assert "What the corpus folder holds is published" in (REPO / "README.md").read_text(encoding="utf-8")


def test_a_reader_change_reads_that_kind_of_file_again_and_full_reads_every_file(tiny_corpus, tmp_path, monkeypatch):
    import ingest.loaders
    import ingest.pipeline

    embedder = FakeEmbedder()
    (tiny_corpus / "alone.txt").write_text("Knee braces steady a weak joint during sport.\n", encoding="utf-8")
    build(tiny_corpus, tmp_path / "idx", embedder)
    assert load(tmp_path / "idx").manifest.readers == ingest.loaders.READERS
    read: list[str] = []
    real = ingest.pipeline.read_file

    def counting(path, root, confined=True):
        read.append(path.relative_to(root).as_posix())
        return real(path, root, confined)

    monkeypatch.setattr(ingest.pipeline, "read_file", counting)
    report = build(tiny_corpus, tmp_path / "idx", embedder)
    assert not report.published and read == []  # nothing changed: nothing read
    monkeypatch.setattr(ingest.pipeline, "READERS", {**ingest.loaders.READERS, "md": 99})
    report = build(tiny_corpus, tmp_path / "idx", embedder)
    assert report.published and "hips/flexors.md" in read  # the markdown reader changed
    assert "alone.txt" not in read  # a text file, unchanged and read by the same reader, is not read again
    assert report.embedded == 0  # the same text reuses its vectors
    read.clear()
    report = build(tiny_corpus, tmp_path / "idx", embedder, rules=Rules(full=True))
    assert sorted(read) == sorted(s for s in load(tmp_path / "idx").sources)
    assert report.embedded == 0
