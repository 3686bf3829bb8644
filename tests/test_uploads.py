"""Uploads are stored inside the corpus only, under safe names, never overwriting."""

from __future__ import annotations

import pytest

from ingest.uploads import MAX_UPLOAD_BYTES, UploadRejected, safe_name, save_upload


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("notes.txt", "notes.txt"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("/etc/cron.d/job.md", "job.md"),
        ("C:\\Users\\me\\report.PDF", "report.pdf"),
        ("evil\x00name.txt", "evilname.txt"),
        ("con.txt", "_con.txt"),
        ("..hidden.md", "hidden.md"),
        ("my notes (final).docx", "my notes (final).docx"),
        ("café über.html", "café über.html"),
        ("a<b>|c?.txt", "a_b_c_.txt"),
    ],
)
def test_safe_name(given, expected):
    assert safe_name(given) == expected


@pytest.mark.parametrize("given", ["payload.exe", "archive.tar.gz", "noextension", "../", ".txt", ""])
def test_unsupported_or_empty_names_are_rejected(given):
    with pytest.raises(UploadRejected, match="allowed types: .docx, .htm, .html"):
        safe_name(given)


def test_save_never_leaves_the_corpus(tmp_path):
    corpus = tmp_path / "corpus"
    path, new = save_upload(corpus, "../../outside.txt", b"hello")
    assert new and path == corpus / "uploads" / "outside.txt"
    assert path.read_bytes() == b"hello"
    assert not (tmp_path / "outside.txt").exists()


def test_same_name_different_content_gets_a_new_name(tmp_path):
    first, _ = save_upload(tmp_path, "a.txt", b"one")
    second, new = save_upload(tmp_path, "a.txt", b"two")
    assert new and second.name == "a (2).txt"
    assert first.read_bytes() == b"one" and second.read_bytes() == b"two"


def test_identical_upload_is_not_stored_twice(tmp_path):
    first, _ = save_upload(tmp_path, "a.txt", b"same")
    again, new = save_upload(tmp_path, "a.txt", b"same")
    assert again == first and not new
    assert sorted(p.name for p in (tmp_path / "uploads").iterdir()) == ["a.txt"]


def test_size_limit_and_empty_files(tmp_path):
    with pytest.raises(UploadRejected, match="the limit is 50 MB"):
        save_upload(tmp_path, "big.txt", b"x" * (MAX_UPLOAD_BYTES + 1))
    with pytest.raises(UploadRejected, match="is empty"):
        save_upload(tmp_path, "empty.txt", b"")
