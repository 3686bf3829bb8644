"""Chunking invariants: exact spans, full coverage, bounded size, stable ids."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from index.embed.fake import FakeEmbedder
from index.records import Settings, text_id
from index.search.sentences import split_sentences
from ingest.chunking import chunk_document
from ingest.loaders import Document
from tests.helpers import REPO

COUNT = FakeEmbedder().count_tokens
SETTINGS = Settings(max_tokens=40, min_tokens=8)

words = st.sampled_from("the hip flexor muscle pain heals weeks Dr. e.g. 3. spine… “quoted” x".split())
sentence = st.tuples(st.lists(words, min_size=1, max_size=30), st.sampled_from([".", "?", "!", ""])).map(
    lambda parts: " ".join(parts[0]) + parts[1]
)
paragraph = st.lists(sentence, min_size=1, max_size=8).map(" ".join)
document_text = st.lists(paragraph, min_size=1, max_size=6).flatmap(
    lambda ps: st.sampled_from(["\n", "\n\n", "\r\n", "\n \n"]).map(lambda sep: sep.join(ps))
)


def doc(text: str) -> Document:
    return Document(doc_id="d.txt", source="d.txt", text=text)


@hsettings(max_examples=150, deadline=None)
@given(document_text)
def test_spans_reproduce_text_and_cover_every_word(text):
    chunks = chunk_document(doc(text), COUNT, SETTINGS)
    covered = [False] * len(text)
    previous_end = 0
    for chunk in chunks:
        loc = chunk.location
        assert text[loc.start : loc.end] == chunk.text
        assert loc.start >= previous_end, "passages overlap or are out of order"
        previous_end = loc.end
        assert loc.line == text.count("\n", 0, loc.start) + 1
        for i in range(loc.start, loc.end):
            covered[i] = True
    # Every character that belongs to a word is inside some passage.
    for match in re.finditer(r"\w", text):
        assert covered[match.start()], f"{text[match.start() : match.start() + 20]!r} not covered"


@hsettings(max_examples=150, deadline=None)
@given(document_text)
def test_every_passage_fits_the_window(text):
    for chunk in chunk_document(doc(text), COUNT, SETTINGS):
        assert COUNT(chunk.text) <= SETTINGS.max_tokens  # the chunker's contract, special tokens included


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400))
@hsettings(max_examples=200, deadline=None)
def test_arbitrary_text_never_breaks_span_invariant(text):
    for chunk in chunk_document(doc(text), COUNT, SETTINGS):
        assert text[chunk.location.start : chunk.location.end] == chunk.text
        assert chunk.text.strip() == chunk.text and chunk.text


def test_every_sentence_lies_inside_one_passage():
    text = (REPO / "corpus" / "back-and-hip-health.txt").read_text(encoding="utf-8")
    chunks = chunk_document(doc(text), COUNT, Settings())
    for start, end in split_sentences(text):
        if not re.search(r"\w\w", text[start:end]):
            continue
        assert any(c.location.start <= start and end <= c.location.end for c in chunks), text[start:end]


def test_paragraphs_become_passages_and_junk_is_dropped():
    text = (REPO / "corpus" / "back-and-hip-health.txt").read_text(encoding="utf-8")
    chunks = chunk_document(doc(text), COUNT, Settings())
    assert all(c.text != "×" for c in chunks)
    first = chunks[0]
    assert first.text.startswith("Flexors are flexible muscle tissues")
    assert first.text.endswith("active people and athletes.")
    assert first.location.line == 1


def test_long_paragraph_is_split_at_sentence_ends():
    sentences = [f"Sentence number {i} talks about the hip and the spine." for i in range(30)]
    text = " ".join(sentences)
    chunks = chunk_document(doc(text), COUNT, SETTINGS)
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.text.startswith("Sentence number") and chunk.text.endswith("spine.")


def test_sentence_longer_than_window_is_cut_between_words():
    text = " ".join(f"word{i}" for i in range(200)) + "."
    chunks = chunk_document(doc(text), COUNT, SETTINGS)
    assert len(chunks) >= 5
    assert all(COUNT(c.text) <= SETTINGS.max_tokens for c in chunks)
    assert " ".join(c.text for c in chunks) == text


def test_short_heading_merges_with_next_paragraph():
    text = "# Hip flexors\n\nThe hip flexors lift the knee toward the body and help you bend at the waist."
    chunks = chunk_document(doc(text), COUNT, SETTINGS)
    assert [c.text for c in chunks] == [text]


def test_ids_are_content_hashes_and_stable():
    # Hashes written out when the format was fixed: an index built on any run or machine has these ids.
    assert text_id("The same words.") == "4dda3e17aca09e90b732"
    assert text_id("Other words here.") == "a89f3550dcf37d2c6acb"
    assert text_id("The same words!") == "1155a90f362b5935a207"
    text = "The same words.\n\nOther words here."
    chunks = chunk_document(doc(text), COUNT, Settings(max_tokens=16, min_tokens=0))
    assert [text_id(c.text) for c in chunks] == ["4dda3e17aca09e90b732", "a89f3550dcf37d2c6acb"]


def test_pdf_pages_recorded():
    text = "Page one text about hips.\n\nPage two text about spines."
    document = Document("a.pdf", "a.pdf", text, pages=(0, text.index("Page two")))
    chunks = chunk_document(document, COUNT, Settings(max_tokens=16, min_tokens=0))
    assert [c.location.page for c in chunks] == [1, 2]


# A character cap besides the token cap ------------------------------------------------------------


def test_a_run_of_letters_the_tokenizer_counts_as_one_token_is_still_cut():
    """The reproduction: a header sentence, then 5,000,000 × 'a' (one word, one token, 5 MB)."""
    text = "Blob header sentence about nothing. " + "a" * 5_000_000
    assert COUNT(text) == 2 + 7  # [CLS], [SEP], five words, a full stop and the run: never cut by tokens
    chunks = chunk_document(doc(text), COUNT, Settings())
    assert max(len(c.text) for c in chunks) <= Settings().max_chars
    assert chunks[0].text.startswith("Blob header sentence about nothing. aaa")
    end = 0
    for chunk in chunks:  # cut only inside the run: the pieces follow one another, nothing lost
        assert chunk.location.start == end and text[chunk.location.start : chunk.location.end] == chunk.text
        end = chunk.location.end
    assert end == len(text)


def test_the_character_cap_is_in_the_settings_and_leaves_prose_alone():
    assert Settings().max_chars == 4000
    text = (REPO / "corpus" / "back-and-hip-health.txt").read_text(encoding="utf-8")
    uncapped = chunk_document(doc(text), COUNT, Settings(max_chars=None))
    assert chunk_document(doc(text), COUNT, Settings()) == uncapped


CAPPED = Settings(max_tokens=40, min_tokens=8, max_chars=120)
long_words = st.sampled_from(["a" * 150, "b" * 333, "https://example.org/" + "x" * 90, "c" * 119])
capped_text = st.lists(st.one_of(sentence, long_words), min_size=1, max_size=12).flatmap(
    lambda parts: st.sampled_from([" ", "\n", "\n\n"]).map(lambda sep: sep.join(parts))
)


@hsettings(max_examples=150, deadline=None)
@given(capped_text)
def test_every_passage_fits_the_character_cap_and_spans_hold(text):
    covered = [False] * len(text)
    for chunk in chunk_document(doc(text), COUNT, CAPPED):
        loc = chunk.location
        assert text[loc.start : loc.end] == chunk.text
        assert len(chunk.text) <= CAPPED.max_chars and COUNT(chunk.text) <= CAPPED.max_tokens
        covered[loc.start : loc.end] = [True] * (loc.end - loc.start)
    assert all(covered[m.start()] for m in re.finditer(r"\w", text))


def test_a_merged_passage_counts_the_wordless_line_it_spans():
    """Found by test_fuzz: a short line merged over a dropped "<" line came out one token over the window."""
    text = ":" + "x" * 50 + "\n<\n" + " ".join(["word"] * 36)
    for chunk in chunk_document(doc(text), COUNT, SETTINGS):
        assert COUNT(chunk.text) <= SETTINGS.max_tokens


def structured(markdown: str) -> Document:
    from ingest.loaders.markdown import read_markdown

    return read_markdown(markdown.encode("utf-8"), "d.md")


def test_a_structured_document_is_cut_by_section_and_each_passage_knows_its_heading_path():
    document = structured(
        "---\ntitle: Zika virus\n---\n# Zika virus\n\nZika is spread by mosquitoes in warm countries.\n\n"
        "## Symptoms\n\nMost people have no symptoms at all.\n\n## Treatment\n\nRest and drink plenty of fluids.\n"
    )
    chunks = chunk_document(document, COUNT, Settings())
    assert [(c.location.section, c.text) for c in chunks] == [
        ("Zika virus", "Zika is spread by mosquitoes in warm countries."),
        ("Zika virus › Symptoms", "Most people have no symptoms at all."),
        ("Zika virus › Treatment", "Rest and drink plenty of fluids."),
    ]
    for chunk in chunks:  # headings name the section; no passage quotes one
        assert document.text[chunk.location.start : chunk.location.end] == chunk.text


def test_a_list_stays_with_the_line_that_introduces_it_and_a_table_with_its_rows():
    document = structured(
        "## Symptoms\n\nThe symptoms include:\n\n* a rash\n* a mild fever\n* red eyes\n\n"
        "| Reading | Target |\n|---|---|\n| Before meals | 4 to 7 |\n| After meals | under 9 |\n"
    )
    chunks = chunk_document(document, COUNT, Settings(min_tokens=0))
    assert [c.text for c in chunks] == [
        "The symptoms include:\n\n• a rash\n• a mild fever\n• red eyes",
        "Reading: Before meals; Target: 4 to 7\nReading: After meals; Target: under 9",
    ]
    assert {c.location.section for c in chunks} == {"Symptoms"}


def test_a_passage_never_crosses_a_heading_even_when_short():
    document = structured("## One\n\nShort.\n\n## Two\n\nAlso short.\n")
    chunks = chunk_document(document, COUNT, Settings())
    assert [(c.location.section, c.text) for c in chunks] == [("One", "Short."), ("Two", "Also short.")]
