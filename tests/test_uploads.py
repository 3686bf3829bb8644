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
    for content in (b"one", b"two"):  # the numbered second name must fit as well
        path, new = save_upload(tmp_path, stem + ".txt", content)
        assert new and path.read_bytes() == content and path.parent == tmp_path / "uploads"


def test_concurrent_uploads_of_one_name_keep_every_file_intact(tmp_path):
    import threading

    contents = [f"upload number {i} ".encode() * 1000 for i in range(8)]
    start = threading.Barrier(len(contents))
    stored: list = []

    def upload(data: bytes) -> None:
        start.wait()
        stored.append(save_upload(tmp_path, "same.txt", data))

    threads = [threading.Thread(target=upload, args=(data,)) for data in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(new for _, new in stored)
    assert sorted(path.read_bytes() for path, _ in stored) == sorted(contents)
    assert len({path for path, _ in stored}) == len(contents)
    assert (
        sorted(p.name for p in (tmp_path / "uploads").iterdir() if p.name.startswith(".")) == []
    )  # no temporaries left


def test_an_upload_never_reads_or_writes_through_a_link_out_of_the_corpus(tmp_path):
    """Issue 16 D3: a link in uploads/ is not read (not even to compare), a linked uploads/ is not written."""
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"private")
    corpus = tmp_path / "corpus"
    (corpus / "uploads").mkdir(parents=True)
    (corpus / "uploads" / "notes.txt").symlink_to(outside)
    path, new = save_upload(corpus, "notes.txt", b"private")  # same bytes: comparing would confirm them
    assert new and path == corpus / "uploads" / "notes (2).txt"
    other = tmp_path / "elsewhere"
    other.mkdir()
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "uploads").symlink_to(other)
    with pytest.raises(UploadRejected, match="outside the corpus"):
        save_upload(linked, "notes.txt", b"hello")
    assert list(other.iterdir()) == []
