"""Each loader on a small real file of its type, and bad files reported by name."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from index.records import Skipped
from index.store import load
from ingest.loaders import (
    Document,
    LoadError,
    decode_text,
    discover,
    is_question_set,
    iter_documents,
    load_file,
    read_file,
)
from ingest.pipeline import build
from tests.helpers import write_pdf


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"plain ascii\n", "plain ascii\n"),
        ("utf-8 café\r\nnext".encode(), "utf-8 café\r\nnext"),
        (b"\xef\xbb\xbfwith bom", "with bom"),
        (b"caf\xe9 \x93quoted\x94", "café “quoted”"),  # cp1252
        (b"\x81 latin1 \xe9", "\x81 latin1 é"),  # 0x81 is undefined in cp1252: Latin-1
        ("utf-16 text ü".encode("utf-16"), "utf-16 text ü"),
    ],
)
def test_decode_text(data, expected):
    assert decode_text(data) == expected


def test_binary_is_refused():
    with pytest.raises(LoadError, match="binary"):
        decode_text(bytes(range(256)) * 4)


def test_txt_keeps_decoded_content_exactly(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("Line one.\r\nLine two – dash.\n".encode())
    [doc] = load_file(path, "a.txt")
    assert doc == Document("a.txt", "a.txt", "Line one.\r\nLine two – dash.\n")


def test_markdown_is_text(tmp_path):
    path = tmp_path / "b.md"
    path.write_text("# Title\n\nSome *markdown* text.\n", encoding="utf-8")
    assert load_file(path, "b.md")[0].text == "# Title\n\nSome *markdown* text.\n"


def test_html_keeps_visible_text_only(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>T</title><style>p{color:red}</style><script>var x = 1;</script></head>"
        "<body><h1>Hip &amp; back</h1><p>First   paragraph<br>second line.</p><!-- hidden --><p>Third</p></body></html>",
        encoding="utf-8",
    )
    assert load_file(path, "page.html")[0].text == "Hip & back\n\nFirst paragraph\nsecond line.\n\nThird"


def test_pdf_text_and_pages(tmp_path):
    path = tmp_path / "two.pdf"
    write_pdf(path, ["Hip flexors lift the knee.", "Vertebral fractures heal in weeks."])
    [doc] = load_file(path, "two.pdf")
    assert "Hip flexors lift the knee." in doc.text
    second = doc.text.index("Vertebral fractures")
    assert doc.pages[0] == 0 and doc.page_at(second) == 2 and doc.page_at(0) == 1


def test_encrypted_pdf_is_reported(tmp_path):
    from pypdf import PdfWriter

    plain = tmp_path / "plain.pdf"
    write_pdf(plain, ["Secret text."])
    writer = PdfWriter(clone_from=plain)
    writer.encrypt("secret")
    with open(tmp_path / "locked.pdf", "wb") as out:
        writer.write(out)
    with pytest.raises(LoadError, match="encrypted PDF"):
        load_file(tmp_path / "locked.pdf", "locked.pdf")


def test_corrupt_pdf_is_reported(tmp_path):
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    with pytest.raises(LoadError, match="PDF"):
        load_file(tmp_path / "bad.pdf", "bad.pdf")


def test_docx_paragraphs_and_tables(tmp_path):
    import docx

    document = docx.Document()
    document.add_paragraph("Stretch the hip flexors daily.")
    document.add_paragraph("")
    document.add_paragraph("Ice the joint for fifteen minutes.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Exercise"
    table.rows[0].cells[1].text = "Bridge"
    document.save(tmp_path / "notes.docx")
    [doc] = load_file(tmp_path / "notes.docx", "notes.docx")
    assert doc.text == "Stretch the hip flexors daily.\n\nIce the joint for fifteen minutes.\n\nExercise | Bridge"


def test_broken_docx_is_reported(tmp_path):
    (tmp_path / "bad.docx").write_bytes(b"not a zip")
    with pytest.raises(LoadError, match="not a valid .docx"):
        load_file(tmp_path / "bad.docx", "bad.docx")


def test_jsonl_records_become_documents_and_bad_lines_are_reported(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    lines = [
        json.dumps({"_id": "r1", "title": "Hips", "text": "Hip text."}),
        "{not json",
        json.dumps({"_id": 2, "title": "", "text": "Untitled text."}),
        json.dumps({"title": "no id", "text": "x"}),
    ]
    (corpus / "records.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    items = list(iter_documents(corpus))
    docs = [i for i in items if isinstance(i, Document)]
    skipped = [i for i in items if isinstance(i, Skipped)]
    assert [(d.doc_id, d.text, d.source) for d in docs] == [
        ("r1", "Hips\n\nHip text.", "records.jsonl"),
        ("2", "Untitled text.", "records.jsonl"),
    ]
    assert [s.source for s in skipped] == ["records.jsonl:2", "records.jsonl:4"]
    assert all(s.reason.startswith("invalid JSON record") for s in skipped)


def test_discover_walks_subfolders_and_ignores_hidden_and_question_sets(tmp_path):
    names = [
        "a.txt",
        "sub/b.MD",
        "sub/deeper/c.html",
        ".hidden.txt",
        ".git/x.txt",
        "questions.jsonl",
        "d.exe",
        "questions-everyday.jsonl",
        "sub/questions_hard.jsonl",
        "Questions-Extra.JSONL",
        "records.jsonl",
    ]
    for name in names:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("text", encoding="utf-8")
    found = [p.relative_to(tmp_path).as_posix() for p in discover(tmp_path)]
    assert found == ["a.txt", "records.jsonl", "sub/b.MD", "sub/deeper/c.html"]


def test_every_question_set_in_the_corpus_is_left_out_of_the_index(tmp_path, fake_embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "hips.txt").write_text("The hip flexors lift the knee toward the body.", encoding="utf-8")
    question_set = '{"query": "what do hip flexors do", "answer": "lift the knee"}\n'
    for name in ("questions.jsonl", "questions-everyday.jsonl"):
        (corpus / name).write_text(question_set, encoding="utf-8")
    report = build(corpus, tmp_path / "idx", fake_embedder)
    assert report.documents == 1 and report.skipped == ()
    assert {d.source for d in load(tmp_path / "idx").documents} == {"hips.txt"}
    assert is_question_set("questions-everyday.jsonl") and not is_question_set("my-questions.jsonl")


def test_symlink_loop_does_not_hang(tmp_path):
    (tmp_path / "a.txt").write_text("text", encoding="utf-8")
    os.symlink(tmp_path, tmp_path / "loop")
    assert [p.name for p in discover(tmp_path)] == ["a.txt"]


def test_bad_files_are_skipped_by_name_and_good_ones_kept(tmp_path, monkeypatch):
    (tmp_path / "good.txt").write_text("Good text.", encoding="utf-8")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)))
    (tmp_path / "blank.md").write_text("   \n\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("locked", encoding="utf-8")
    real_read = Path.read_bytes

    def read_bytes(self):
        if self.name == "secret.txt":
            raise PermissionError(13, "Permission denied")
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    items = {i.source: i for i in iter_documents(tmp_path)}
    assert isinstance(items["good.txt"], Document)
    assert items["empty.txt"] == Skipped("empty.txt", "file is empty")
    assert items["binary.txt"] == Skipped("binary.txt", "binary file, not text")
    assert items["blank.md"] == Skipped("blank.md", "no text found")
    assert items["secret.txt"] == Skipped("secret.txt", "permission denied")


# Issue 16 D3: a link that leaves the corpus is never read ------------------------------------------------------


@pytest.fixture
def linked_corpus(tmp_path) -> Path:
    """A corpus with links out of it (to /etc/passwd, to a sibling folder whose name starts the same) and one inside."""
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "real.txt").write_text("Zebras sleep standing up.", encoding="utf-8")
    secret = tmp_path / "corpus-private" / "secret.md"  # "corpus-private" starts with "corpus"
    secret.parent.mkdir()
    secret.write_text("# Secret\n\nThe server's private notes.", encoding="utf-8")
    os.symlink("/etc/passwd", corpus / "leak.txt")
    os.symlink(secret, corpus / "notes.md")
    os.symlink("../../corpus-private/secret.md", corpus / "sub" / "relative.md")
    os.symlink("../real.txt", corpus / "sub" / "inside.txt")  # stays inside: read
    return corpus


OUTSIDE = ["leak.txt", "notes.md", "sub/relative.md"]


def test_links_that_leave_the_corpus_are_skipped_with_the_reason(linked_corpus):
    rejected: list[Skipped] = []
    found = [p.relative_to(linked_corpus).as_posix() for p in discover(linked_corpus, rejected)]
    assert found == ["real.txt", "sub/inside.txt"]
    assert rejected == [Skipped(name, "link points outside the corpus") for name in OUTSIDE]


def test_a_build_never_serves_text_from_outside_the_corpus(linked_corpus, tmp_path, fake_embedder):
    report = build(linked_corpus, tmp_path / "idx", fake_embedder)
    assert {s.source: s.reason for s in report.skipped} == dict.fromkeys(OUTSIDE, "link points outside the corpus")
    stored = load(tmp_path / "idx")
    assert {d.source for d in stored.documents} == {"real.txt", "sub/inside.txt"}
    assert not any("root:" in p.text or "private notes" in p.text for p in stored.passages)


def test_reading_a_link_out_is_refused_even_after_discovery(linked_corpus):
    """What a Ray worker does if a file became a link out between discovery and reading."""
    assert read_file(linked_corpus / "leak.txt", linked_corpus) == [
        Skipped("leak.txt", "link points outside the corpus")
    ]
    [document] = read_file(linked_corpus / "sub" / "inside.txt", linked_corpus)
    assert document.text == "Zebras sleep standing up."


def test_a_corpus_that_is_one_named_file_may_be_a_link(linked_corpus, tmp_path):
    """The operator named it: `--corpus data/corpus.jsonl` pointing at a data set elsewhere is read."""
    assert discover(linked_corpus / "notes.md") == [linked_corpus / "notes.md"]
    [document] = list(iter_documents(linked_corpus / "notes.md"))
    assert document.source == "notes.md" and "private notes" in document.text
