"""Documents as people manage them: status against the index, delete and replace that equal a fresh build, no reads outside the corpus."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from index.search.searcher import Searcher
from index.store.reader import load
from ingest.documents import (
    DocumentChanged,
    DocumentNotFound,
    DocumentTooLarge,
    DocumentUnreadable,
    Status,
    delete_document,
    document_path,
    list_documents,
    read_document,
    read_original,
)
from ingest.pipeline import build
from ingest.uploads import save_upload


def statuses(corpus, index_dir) -> dict[str, tuple[Status, str]]:
    stored = load(index_dir) if (index_dir / "CURRENT").exists() else None
    return {e.source: (e.status, e.reason) for e in list_documents(corpus, stored)}


def assert_same_index(a, b, embedder) -> None:
    """Two index folders hold the same passages, documents, vectors and answers."""
    one, two = load(a), load(b)
    assert one.passages == two.passages
    assert one.documents == two.documents
    assert (one.dense.vectors() == two.dense.vectors()).all()
    assert np.array_equal(one.sentences.vectors, two.sentences.vectors)
    for question in ["zentrofin dose", "hip flexors", "spinal fusion", "vertebral fractures"]:
        assert Searcher(one, embedder).search(question) == Searcher(two, embedder).search(question)


def test_each_document_has_its_status_and_the_reason_it_was_skipped(tiny_corpus, tmp_path, fake_embedder):
    index_dir = tmp_path / "idx"
    assert {s for s, _ in statuses(tiny_corpus, index_dir).values()} == {Status.PENDING}  # nothing built yet
    (tiny_corpus / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    build(tiny_corpus, index_dir, fake_embedder)
    (tiny_corpus / "new.md").write_text("A new note about knees.", encoding="utf-8")
    (tiny_corpus / "copy.txt").unlink()
    (tiny_corpus / "questions.jsonl").write_text('{"query": "q", "answer": null}\n', encoding="utf-8")
    assert statuses(tiny_corpus, index_dir) == {
        "binary.txt": (Status.SKIPPED, "binary file, not text"),
        "copy.txt": (Status.REMOVED, ""),
        "fractures.txt": (Status.INDEXED, ""),
        "hips/flexors.md": (Status.INDEXED, ""),
        "new.md": (Status.PENDING, ""),
    }
    entries = {e.source: e for e in list_documents(tiny_corpus, load(index_dir))}
    assert entries["fractures.txt"].passages == 2 and entries["fractures.txt"].kind == "txt"
    assert entries["fractures.txt"].size == (tiny_corpus / "fractures.txt").stat().st_size
    assert Status.REMOVED.label == "deleted, pending rebuild" and Status.PENDING.label == "pending rebuild"


def test_skipped_records_of_a_collection_are_noted(tmp_path, fake_embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "records.jsonl").write_text(
        '{"_id": "a", "title": "", "text": "Okapi live in rainforests."}\nnot json\n', encoding="utf-8"
    )
    build(corpus, tmp_path / "idx", fake_embedder)
    (entry,) = list_documents(corpus, load(tmp_path / "idx"))
    assert entry.status is Status.INDEXED and entry.reason.startswith("1 record skipped: invalid JSON record")


def test_delete_then_rebuild_equals_a_fresh_build(tiny_corpus, tmp_path, fake_embedder):
    (tiny_corpus / "zentrofin.txt").write_text("Zentrofin is taken twice daily with food.", encoding="utf-8")
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    delete_document(tiny_corpus, "zentrofin.txt")
    assert not (tiny_corpus / "zentrofin.txt").exists()
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    build(tiny_corpus, tmp_path / "fresh", fake_embedder)
    assert_same_index(tmp_path / "idx", tmp_path / "fresh", fake_embedder)
    assert not any("Zentrofin" in p.text for p in load(tmp_path / "idx").passages)


def test_replace_then_rebuild_equals_a_fresh_build(tiny_corpus, tmp_path, fake_embedder):
    save_upload(tiny_corpus, "zentrofin.txt", b"Zentrofin is taken twice daily with food.")
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    save_upload(tiny_corpus, "zentrofin.txt", b"Zentrofin is taken once a week, never with food.", replace=True)
    assert statuses(tiny_corpus, tmp_path / "idx")["uploads/zentrofin.txt"][0] is Status.PENDING
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    build(tiny_corpus, tmp_path / "fresh", fake_embedder)
    assert_same_index(tmp_path / "idx", tmp_path / "fresh", fake_embedder)
    texts = " ".join(p.text for p in load(tmp_path / "idx").passages)
    assert "once a week" in texts and "twice daily" not in texts


@pytest.mark.parametrize(
    "source",
    ["", "/etc/passwd", "../outside.txt", "hips/../../outside.txt", ".hidden.txt", "questions.jsonl", "nope.txt"],
)
def test_nothing_outside_the_documents_can_be_read_or_deleted(tiny_corpus, source):
    (tiny_corpus.parent / "outside.txt").write_text("secret", encoding="utf-8")
    (tiny_corpus / ".hidden.txt").write_text("hidden", encoding="utf-8")
    (tiny_corpus / "questions.jsonl").write_text('{"query": "q", "answer": null}\n', encoding="utf-8")
    for action in (document_path, read_document, delete_document):
        with pytest.raises(DocumentNotFound):
            action(tiny_corpus, source)
    assert (tiny_corpus.parent / "outside.txt").exists() and (tiny_corpus / ".hidden.txt").exists()


def test_a_link_out_of_the_corpus_is_not_a_document(tiny_corpus):
    (tiny_corpus.parent / "secret.txt").write_text("root:x:0:0", encoding="utf-8")
    (tiny_corpus / "leak.txt").symlink_to(tiny_corpus.parent / "secret.txt")
    with pytest.raises(DocumentNotFound):
        read_document(tiny_corpus, "leak.txt")
    with pytest.raises(DocumentNotFound):
        delete_document(tiny_corpus, "leak.txt")
    assert (tiny_corpus.parent / "secret.txt").read_text(encoding="utf-8") == "root:x:0:0"


def test_read_document_gives_the_text_the_citations_index(tiny_corpus, tmp_path, fake_embedder):
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    stored = load(tmp_path / "idx")
    for passage in stored.passages:
        for loc in passage.locations:
            assert read_document(tiny_corpus, loc.source).text[loc.start : loc.end] == passage.text
    shutil.copy(tiny_corpus / "fractures.txt", tiny_corpus / "again.txt")
    (tiny_corpus / "records.jsonl").write_text(
        '{"_id": "okapi-1", "title": "Okapi", "text": "Okapi are relatives of giraffes."}\n', encoding="utf-8"
    )
    assert read_document(tiny_corpus, "records.jsonl", "okapi-1").text == "Okapi\n\nOkapi are relatives of giraffes."
    with pytest.raises(DocumentNotFound):
        read_document(tiny_corpus, "records.jsonl", "other")
    (tiny_corpus / "binary.txt").write_bytes(b"\x00\x01binary")
    with pytest.raises(DocumentUnreadable, match="binary file"):
        read_document(tiny_corpus, "binary.txt")


def test_the_original_is_read_only_as_the_index_recorded_it(tiny_corpus, tmp_path, fake_embedder):
    """The one rule for reading a source file at request time (issue 23, N3)."""
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    sources = load(tmp_path / "idx").sources
    flexors = tiny_corpus / "hips" / "flexors.md"
    assert read_original(tiny_corpus, "hips/flexors.md", sources["hips/flexors.md"]) == flexors.read_bytes()
    # A folder on the way swapped for a link to a look-alike outside: same name, size and time.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "flexors.md").write_bytes(b"x" * flexors.stat().st_size)
    os.utime(outside / "flexors.md", ns=(flexors.stat().st_atime_ns, flexors.stat().st_mtime_ns))
    (tiny_corpus / "hips").rename(tmp_path / "hips-moved")
    (tiny_corpus / "hips").symlink_to(outside)
    with pytest.raises(DocumentNotFound, match="a link"):
        read_original(tiny_corpus, "hips/flexors.md", sources["hips/flexors.md"])
    # The file itself swapped for a pipe: refused at once, never read (a read would block).
    (tiny_corpus / "copy.txt").unlink()
    os.mkfifo(tiny_corpus / "copy.txt")
    with pytest.raises(DocumentNotFound, match="not a regular file"):
        read_original(tiny_corpus, "copy.txt", sources["copy.txt"])
    # Edited in place: its size or time differ from the record.
    with open(tiny_corpus / "fractures.txt", "ab") as out:
        out.write(b" more")
    with pytest.raises(DocumentChanged, match="fractures.txt changed since the index was built"):
        read_original(tiny_corpus, "fractures.txt", sources["fractures.txt"])
    # Names that are no document, and a file the index never recorded.
    (tiny_corpus.parent / "secret.txt").write_text("root:x:0:0", encoding="utf-8")
    for source in ("../secret.txt", str(tiny_corpus.parent / "secret.txt"), ".hidden.txt", "a/./b.txt", ""):
        with pytest.raises(DocumentNotFound):
            read_original(tiny_corpus, source, sources["fractures.txt"])
    with pytest.raises(DocumentNotFound):
        read_original(tiny_corpus, "fractures.txt", None)


def test_an_original_too_large_to_download_is_refused_before_it_is_read(
    tiny_corpus, tmp_path, fake_embedder, monkeypatch
):
    import ingest.documents

    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    monkeypatch.setattr(ingest.documents, "MAX_DOWNLOAD_BYTES", 10)
    with pytest.raises(DocumentTooLarge, match="fractures.txt is too large to download here"):
        read_original(tiny_corpus, "fractures.txt", load(tmp_path / "idx").sources["fractures.txt"])
