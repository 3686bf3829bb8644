"""Every version keeps each document's extracted text, the text citations' offsets index (index.store.texts)."""

from __future__ import annotations

import json

import pytest

from index.embed.fake import FakeEmbedder
from index.errors import IndexDamaged
from index.store.reader import load
from ingest.loaders import load_file
from ingest.pipeline import build


def assert_texts_cite_every_passage(index_dir) -> None:
    stored = load(index_dir)
    rows = {(d.source, d.doc_id): row for row, d in enumerate(stored.documents)}
    assert len(stored.texts) == len(stored.documents) == len(rows)
    for doc, row in rows.items():
        assert len(stored.texts.text(row)) == stored.documents[row].chars, doc
    for passage in stored.passages:  # a near copy's further locations hold its own, slightly different, text
        loc = passage.location
        assert stored.texts.text(rows[loc.source, loc.doc_id])[loc.start : loc.end] == passage.text


def test_texts_are_the_documents_extracted_text(tiny_corpus, tmp_path):
    records = [{"_id": "a", "text": "Knee braces help."}, {"_id": "fractures.txt", "text": "Same id as a file."}]
    (tiny_corpus / "records.jsonl").write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    build(tiny_corpus, tmp_path / "idx", FakeEmbedder())
    assert_texts_cite_every_passage(tmp_path / "idx")
    stored = load(tmp_path / "idx")
    row = next(r for r, d in enumerate(stored.documents) if d.source == "hips/flexors.md")
    [flexors] = load_file(tiny_corpus / "hips/flexors.md", "hips/flexors.md")
    assert stored.texts.text(row) == flexors.text  # markdown as read: the heading without its "#"
    record = next(
        r for r, d in enumerate(stored.documents) if (d.source, d.doc_id) == ("records.jsonl", "fractures.txt")
    )
    assert stored.texts.text(record).endswith("Same id as a file.")


def test_an_update_keeps_the_texts_of_files_it_does_not_read_again(tiny_corpus, tmp_path):
    build(tiny_corpus, tmp_path / "idx", FakeEmbedder())
    (tiny_corpus / "knees.txt").write_text("Knee pain after running often comes from the kneecap.", encoding="utf-8")
    (tiny_corpus / "copy.txt").unlink()
    build(tiny_corpus, tmp_path / "idx", FakeEmbedder())
    build(tiny_corpus, tmp_path / "full", FakeEmbedder())
    updated, full = load(tmp_path / "idx"), load(tmp_path / "full")
    assert [updated.texts.text(r) for r in range(len(updated.texts))] == [
        full.texts.text(r) for r in range(len(full.texts))
    ]
    assert_texts_cite_every_passage(tmp_path / "idx")


def test_an_edited_texts_file_is_refused(tiny_corpus, tmp_path):
    build(tiny_corpus, tmp_path / "idx", FakeEmbedder())
    version = load(tmp_path / "idx").path
    data = (version / "texts.bin").read_bytes()
    (version / "texts.bin").write_bytes(data.replace(b"Vertebral", b"Vertebrum"))
    with pytest.raises(IndexDamaged, match=r"texts.bin does not match its manifest"):
        load(tmp_path / "idx")
