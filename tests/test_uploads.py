"""Uploads are stored inside the corpus only, under safe names, never overwriting."""

from __future__ import annotations

import os
import stat

import pytest

from ingest.uploads import MAX_UPLOAD_BYTES, NameTaken, Outcome, UploadRejected, safe_name, save_upload


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
        ("Questions-notes.jsonl", "_Questions-notes.jsonl"),  # else a question set: saved, never indexed
        ("questions.txt", "questions.txt"),
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
    saved = save_upload(corpus, "../../outside.txt", b"hello")
    assert saved.outcome is Outcome.ADDED and saved.source == "uploads/outside.txt"
    assert (corpus / "uploads" / "outside.txt").read_bytes() == b"hello"
    assert not (tmp_path / "outside.txt").exists()


def test_uploads_are_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        save_upload(tmp_path, "a.txt", b"one")
        save_upload(tmp_path, "a.txt", b"two", replace=True)
        save_upload(tmp_path, "b.txt", b"three")
    finally:
        os.umask(old)
    for name in ("a.txt", "b.txt"):
        assert stat.S_IMODE((tmp_path / "uploads" / name).stat().st_mode) == 0o644


def test_same_name_different_content_asks_before_replacing(tmp_path):
    save_upload(tmp_path, "a.txt", b"one")
    with pytest.raises(NameTaken, match="replace it") as taken:
        save_upload(tmp_path, "a.txt", b"two")
    assert taken.value.existing == "uploads/a.txt"
    assert (tmp_path / "uploads" / "a.txt").read_bytes() == b"one"
    saved = save_upload(tmp_path, "a.txt", b"two", replace=True)
    assert saved.outcome is Outcome.REPLACED and saved.source == "uploads/a.txt"
    assert sorted(p.name for p in (tmp_path / "uploads").iterdir()) == ["a.txt"]
    assert (tmp_path / "uploads" / "a.txt").read_bytes() == b"two"


def test_a_document_outside_uploads_is_replaced_where_it_is(tmp_path):
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "hips.md").write_text("old text", encoding="utf-8")
    with pytest.raises(NameTaken) as taken:
        save_upload(tmp_path, "hips.md", b"new text")
    assert taken.value.existing == "guides/hips.md"
    assert save_upload(tmp_path, "hips.md", b"new text", replace=True).source == "guides/hips.md"
    assert (tmp_path / "guides" / "hips.md").read_bytes() == b"new text"
    assert not (tmp_path / "uploads" / "hips.md").exists()


def test_identical_upload_is_not_stored_twice(tmp_path):
    first = save_upload(tmp_path, "a.txt", b"same")
    again = save_upload(tmp_path, "a.txt", b"same")
    assert again.source == first.source and again.outcome is Outcome.UNCHANGED
    assert sorted(p.name for p in (tmp_path / "uploads").iterdir()) == ["a.txt"]


def test_uploads_stay_within_the_quota(tmp_path):
    save_upload(tmp_path, "a.txt", b"x" * 600, quota=1000)
    with pytest.raises(UploadRejected, match="does not fit: uploads already take"):
        save_upload(tmp_path, "b.txt", b"y" * 500, quota=1000)
    assert not (tmp_path / "uploads" / "b.txt").exists()
    save_upload(tmp_path, "b.txt", b"y" * 400, quota=1000)  # exactly full
    # Replacing counts the new size instead of the old one.
    save_upload(tmp_path, "a.txt", b"z" * 500, replace=True, quota=1000)
    with pytest.raises(UploadRejected, match="KB_UPLOAD_QUOTA_MB"):
        save_upload(tmp_path, "a.txt", b"z" * 700, replace=True, quota=1000)


def test_size_limit_and_empty_files(tmp_path):
    with pytest.raises(UploadRejected, match="the limit is 50 MB"):
        save_upload(tmp_path, "big.txt", b"x" * (MAX_UPLOAD_BYTES + 1))
    with pytest.raises(UploadRejected, match="is empty"):
        save_upload(tmp_path, "empty.txt", b"")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("CON.TXT", "_CON.txt"),
        ("nul.tar.md", "_nul.tar.md"),
        ("CON .txt", "_CON.txt"),
        ("com¹.md", "_com¹.md"),
        ("LPT9.html", "_LPT9.html"),
        ("console.txt", "console.txt"),  # only the exact device names are reserved
        ("a.txt\x00.exe", None),  # NUL does not hide the real type
        ("report\u202etxt.exe", None),  # right-to-left override: the type is still .exe
        ("notes\u202e.txt", "notes.txt"),
        (" ../.. /secret.md", "secret.md"),
        ("..\\..\\windows\\win.ini.txt", "win.ini.txt"),
        ("line\nbreak\r\t.txt", "linebreak.txt"),
        ("emoji 😀.md", "emoji _.md"),
    ],
)
def test_hostile_names_are_made_harmless(given, expected):
    if expected is None:
        with pytest.raises(UploadRejected, match="is not supported"):
            safe_name(given)
    else:
        assert safe_name(given) == expected


@pytest.mark.parametrize(
    "given", ["CON", "NUL", "..", ".", "", "   ", "../../etc/passwd", "/etc/passwd", "\x00", "....txt"]
)
def test_names_without_a_usable_name_and_type_are_rejected(given):
    with pytest.raises(UploadRejected, match="allowed types"):
        safe_name(given)


@pytest.mark.parametrize("stem", ["a" * 5000, "日本語" * 1000, "é" * 300 + "x"])
def test_very_long_names_fit_the_file_system(tmp_path, stem):
    name = safe_name(stem + ".txt")
    assert name.endswith(".txt") and len(name.encode("utf-8")) <= 255
    for content in (b"one", b"two"):  # the replacement must fit as well
        saved = save_upload(tmp_path, stem + ".txt", content, replace=True)
        path = tmp_path / saved.source
        assert path.read_bytes() == content and path.parent == tmp_path / "uploads"


def test_concurrent_uploads_of_one_name_keep_every_file_intact(tmp_path):
    import threading

    contents = [f"upload number {i} ".encode() * 1000 for i in range(8)]
    start = threading.Barrier(len(contents))
    stored: list = []
    refused: list = []

    def upload(data: bytes) -> None:
        start.wait()
        try:
            stored.append(save_upload(tmp_path, "same.txt", data))
        except NameTaken as exc:
            refused.append(exc)

    threads = [threading.Thread(target=upload, args=(data,)) for data in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One upload wins the name; every other one is asked "replace?", and the file is one upload whole.
    assert [s.outcome for s in stored] == [Outcome.ADDED] and len(refused) == len(contents) - 1
    assert (tmp_path / "uploads" / "same.txt").read_bytes() in contents
    assert (
        sorted(p.name for p in (tmp_path / "uploads").iterdir() if p.name.startswith(".")) == []
    )  # no temporaries left


def test_an_upload_never_reads_or_writes_through_a_link_out_of_the_corpus(tmp_path):
    """A link in uploads/ is not read (not even to compare), a linked uploads/ is not written."""
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"private")
    corpus = tmp_path / "corpus"
    (corpus / "uploads").mkdir(parents=True)
    (corpus / "uploads" / "notes.txt").symlink_to(outside)
    # Same bytes: "unchanged" (or "replace?") would confirm them; the link is neither read nor replaced.
    with pytest.raises(UploadRejected, match="not a document is in the way"):
        save_upload(corpus, "notes.txt", b"private")
    with pytest.raises(UploadRejected, match="not a document is in the way"):
        save_upload(corpus, "notes.txt", b"other", replace=True)
    assert (corpus / "uploads" / "notes.txt").is_symlink() and outside.read_bytes() == b"private"
    other = tmp_path / "elsewhere"
    other.mkdir()
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "uploads").symlink_to(other)
    with pytest.raises(UploadRejected, match="outside the corpus"):
        save_upload(linked, "notes.txt", b"hello")
    assert list(other.iterdir()) == []


def test_parallel_uploads_cannot_race_past_the_quota(tmp_path, monkeypatch):
    """Six 900 KB uploads at once against a 1 MB quota: one is kept, five are refused (issue 23, N6)."""
    import threading
    import time

    import ingest.uploads

    measure = ingest.uploads.uploads_size

    def slow_disk(corpus):  # a large uploads folder takes a while to measure: the window a race needs
        used = measure(corpus)
        time.sleep(0.3)
        return used

    monkeypatch.setattr(ingest.uploads, "uploads_size", slow_disk)
    quota = 2**20
    contents = [bytes([65 + i]) * 900 * 1024 for i in range(6)]
    start = threading.Barrier(len(contents))
    stored: list = []
    refused: list = []

    def upload(number: int) -> None:
        start.wait()
        try:
            stored.append(save_upload(tmp_path, f"part-{number}.txt", contents[number], quota=quota))
        except UploadRejected as exc:
            refused.append(exc)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(len(contents))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kept = [p for p in (tmp_path / "uploads").iterdir() if not p.name.startswith(".")]
    assert len(stored) == len(kept) == 1 and len(refused) == 5
    assert sum(p.stat().st_size for p in kept) <= quota
    assert all("does not fit" in str(exc) for exc in refused)
