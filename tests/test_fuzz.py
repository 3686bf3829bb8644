"""Fuzzing loaders and chunker with hypothesis.

Loaders: whatever bytes a file holds, loading gives documents or a
`LoadError` (a `Skipped` in a corpus walk), never another exception, and
every document's text can be hashed and stored as UTF-8. Files of each type
are fuzzed from arbitrary bytes and from valid files with bytes flipped,
which reach deeper into the PDF and DOCX parsers.

Chunker: tests/test_chunking.py covers prose-like text and short arbitrary
text; here the text mixes control characters, words far longer than the
window, long runs without a sentence end or a line break, and every kind of
line break, and the invariants are checked in full (exact spans, order,
coverage of every word character, window, line numbers).
"""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.embed.fake import FakeEmbedder
from index.records import Settings, Skipped, text_id
from index.search.sentences import split_sentences
from ingest.chunking import chunk_document
from ingest.loaders import SUPPORTED_SUFFIXES, Document, LoadError, decode_text, iter_documents, load_file
from tests.helpers import write_pdf

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
COUNT = FakeEmbedder().count_tokens
SMALL = Settings(max_tokens=40, min_tokens=8)


def assert_storable(documents: list[Document]) -> None:
    for document in documents:
        text_id(document.text)  # hashing encodes as UTF-8: no lone surrogates
        json.dumps(document.text, ensure_ascii=False).encode("utf-8")
        assert all(0 <= page <= len(document.text) for page in document.pages)


def load_or_refuse(path, source: str) -> list[Document] | None:
    """The loader's result, or None when it refused with a LoadError (any other exception fails the test)."""
    try:
        documents = load_file(path, source)
    except LoadError as exc:
        assert str(exc), "a refusal must say why"
        return None
    assert_storable(documents)
    return documents


# Loaders ---------------------------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=2000))
def test_decode_text_returns_text_or_refuses(data):
    try:
        text = decode_text(data)
    except LoadError:
        return
    assert isinstance(text, str)
    text_id(text)


@FUZZ
@given(
    st.text(max_size=300).filter(lambda t: not t.startswith("\ufeff")),
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"]),
)
def test_decode_text_reads_back_what_was_encoded(text, encoding):
    """Text with a BOM, or UTF-8 without one, round-trips exactly (unless it looks binary).

    cp1252 and Latin-1 are not self-describing; test_loader_files checks them on fixed cases.
    """
    if encoding == "utf-16" and text.startswith("\x00"):
        return  # FF FE 00 00 is also the UTF-32 byte-order mark: ambiguous by the standard
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:  # lone surrogates cannot be encoded
        return
    try:
        decoded = decode_text(data)
    except LoadError:
        assert "\x00" in text or encoding == "utf-8" and sum(ord(c) < 32 for c in text) > 8
        return
    assert decoded == text


@FUZZ
@given(data=st.binary(max_size=3000), suffix=st.sampled_from(sorted(SUPPORTED_SUFFIXES)))
def test_every_loader_on_arbitrary_bytes(tmp_path, data, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    load_or_refuse(path, path.name)


def valid_file(suffix: str) -> bytes:
    """A small valid file of each type, to be damaged."""
    if suffix == ".pdf":
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as folder:
            write_pdf(Path(folder) / "a.pdf", ["Hip flexors lift the knee.", "Second page text."])
            return (Path(folder) / "a.pdf").read_bytes()
    if suffix == ".docx":
        import docx

        buffer = io.BytesIO()
        document = docx.Document()
        document.add_paragraph("Stretch the hip flexors daily.")
        table = document.add_table(rows=1, cols=2)
        table.rows[0].cells[0].text = "Exercise"
        document.save(buffer)
        return buffer.getvalue()
    if suffix == ".jsonl":
        return (json.dumps({"_id": "r1", "title": "T", "text": "Hip text."}) + "\n").encode()
    if suffix in (".html", ".htm"):
        return b"<html><body><h1>Hip</h1><p>First<br>line &amp; more</p><script>x()</script></body></html>"
    return "Plain text – with “quotes”.\n\nSecond paragraph.".encode()


VALID = {suffix: valid_file(suffix) for suffix in (".pdf", ".docx", ".jsonl", ".html", ".txt")}


@FUZZ
@given(
    suffix=st.sampled_from(sorted(VALID)),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.none() | st.floats(0, 1),
)
def test_every_loader_on_damaged_valid_files(tmp_path, suffix, flips, cut):
    data = bytearray(VALID[suffix])
    for where, value in flips:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(bytes(data))
    load_or_refuse(path, path.name)


@FUZZ
@given(
    members=st.dictionaries(
        st.sampled_from(["[Content_Types].xml", "word/document.xml", "_rels/.rels", "word/_rels/document.xml.rels"]),
        st.binary(max_size=200) | st.sampled_from([b"<w:document/>", b"<?xml version='1.0'?><Types/>", b"<<<"]),
        max_size=4,
    )
)
def test_docx_loader_on_zips_with_junk_parts(tmp_path, members):
    """A .docx is a zip; one holding the right part names with junk inside must be refused, not crash."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    path = tmp_path / "junk.docx"
    path.write_bytes(buffer.getvalue())
    load_or_refuse(path, path.name)


# Surrogates included: json.dumps writes them as "\\ud800" escapes, which json.loads turns back into them.
any_text = st.text(max_size=20) | st.lists(st.sampled_from(["x", " ", "\ud800", "\udfff", "\ud83d"]), max_size=6).map(
    "".join
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
well_formed = st.fixed_dictionaries({"_id": any_text | st.integers(), "text": any_text}, optional={"title": any_text})
odd_shape = st.fixed_dictionaries({"_id": json_values, "text": json_values}, optional={"title": json_values})
records = (well_formed | odd_shape | json_values).map(json.dumps) | st.text(max_size=40)


@FUZZ
@given(lines=st.lists(records, max_size=6))
def test_jsonl_records_of_any_shape_become_documents_or_named_skips(tmp_path, lines):
    corpus = tmp_path / "c"
    corpus.mkdir(exist_ok=True)
    (corpus / "r.jsonl").write_text("\n".join(lines), encoding="utf-8")
    items = list(iter_documents(corpus))
    assert all(isinstance(item, (Document, Skipped)) for item in items)
    assert_storable([item for item in items if isinstance(item, Document)])
    for item in items:
        if isinstance(item, Skipped):
            assert item.source.startswith("r.jsonl") and item.reason


# Chunker and sentence splitter --------------------------------------------------------------------------------

pieces = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),  # any unicode, controls included
    st.text(alphabet=st.characters(whitelist_categories=("Cc", "Zs", "Zl", "Zp")), max_size=6),
    st.sampled_from(["\n", "\r\n", "\r", "\n\n", "\u2028", "\x85", "\x0b", "\x0c", ". ", "! ", "… ", "Dr. ", "3. "]),
    st.integers(50, 400).map(lambda n: "x" * n),  # a word longer than the window
    st.integers(20, 120).map(lambda n: " ".join(["word"] * n)),  # a long run with no sentence end
    st.text(alphabet="漢字かなカナ한글ไทย", min_size=20, max_size=200),  # scripts written without spaces
)
hostile_text = st.lists(pieces, max_size=12).map("".join)


def doc(text: str) -> Document:
    return Document("d.txt", "d.txt", text)


@settings(max_examples=300, deadline=None)
@given(hostile_text)
def test_chunks_are_exact_ordered_within_window_and_cover_every_word(text):
    chunks = chunk_document(doc(text), COUNT, SMALL)
    previous_end = 0
    covered = bytearray(len(text))
    for chunk in chunks:
        loc = chunk.location
        assert text[loc.start : loc.end] == chunk.text and chunk.text
        assert loc.start >= previous_end, "passages overlap or are out of order"
        previous_end = loc.end
        assert loc.line == text.count("\n", 0, loc.start) + 1
        # Within the window, except a single indivisible character (one emoji can be many pieces).
        assert COUNT(chunk.text) <= SMALL.max_tokens or len(chunk.text) == 1
        covered[loc.start : loc.end] = b"\x01" * (loc.end - loc.start)
    for match in re.finditer(r"[^\W_]", text):
        assert covered[match.start()], f"{text[max(0, match.start() - 10) : match.start() + 10]!r} not covered"


@settings(max_examples=300, deadline=None)
@given(hostile_text)
def test_sentences_are_stripped_ordered_and_cover_every_visible_character(text):
    spans = split_sentences(text)
    covered = bytearray(len(text))
    previous_end = 0
    for start, end in spans:
        assert previous_end <= start < end <= len(text)
        assert not text[start].isspace() and not text[end - 1].isspace()
        covered[start:end] = b"\x01" * (end - start)
        previous_end = end
    assert all(covered[i] or ch.isspace() for i, ch in enumerate(text))


@pytest.mark.parametrize(
    "text",
    [
        "x" * 100_000,  # one word of 100,000 characters
        "word " * 20_000,  # 100,000 characters, no sentence end, no line break
        "\n" * 50_000 + "end",
        "a. " * 30_000,  # 30,000 single-letter "sentences" (initials: never an end)
        "1. 2. " * 10_000,  # list numbers on one line
        "\x00\x1b\x07" * 10_000 + " word",
    ],
    ids=["long-word", "no-sentence-end", "blank-lines", "initials", "list-numbers", "controls"],
)
def test_degenerate_big_texts_keep_the_invariants(text):
    chunks = chunk_document(doc(text), COUNT, Settings())
    assert chunks
    for chunk in chunks:
        assert text[chunk.location.start : chunk.location.end] == chunk.text
        assert COUNT(chunk.text) <= Settings().max_tokens
