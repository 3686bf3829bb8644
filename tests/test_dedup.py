"""Duplicates collapse into one passage that keeps every location."""

from __future__ import annotations

from index.embed.fake import FakeEmbedder
from index.records import Location, Settings
from ingest.chunking import Chunk, chunk_document
from ingest.dedup import Deduplicator, deduplicate, jaccard, shingles
from ingest.loaders import Document
from tests.helpers import REPO


def chunk(text: str, source: str, start: int = 0) -> Chunk:
    return Chunk(text, Location(source, source, start, start + len(text), 1))


def test_exact_copies_merge_keeping_all_locations():
    text = "Spinal fusion joins two vertebrae with bone grafts."
    passages = deduplicate(
        [chunk(text, "a.txt"), chunk("Other text entirely.", "b.txt"), chunk(text, "c.txt", 40)], 0.85
    )
    assert [p.text for p in passages] == [text, "Other text entirely."]
    assert [(loc.source, loc.start) for loc in passages[0].locations] == [("a.txt", 0), ("c.txt", 40)]


def test_case_spacing_and_punctuation_variants_are_exact_duplicates():
    passages = deduplicate([chunk("Hip pain, often.", "a"), chunk("hip  pain often", "b")], 1.0)
    assert len(passages) == 1 and len(passages[0].locations) == 2


def test_near_duplicate_with_one_word_changed_merges():
    base = " ".join(f"word{i}" for i in range(60))
    edited = base.replace("word30", "changed")
    assert jaccard(shingles(base), shingles(edited)) >= 0.85
    passages = deduplicate([chunk(base, "a"), chunk(edited, "b")], 0.85)
    assert len(passages) == 1
    assert passages[0].text == base  # the first occurrence is canonical
    assert passages[0].locations[1].source == "b"


def test_different_texts_stay_apart_even_with_shared_words():
    a = "Vertebral fractures take weeks to heal with rest and pain relievers."
    b = "Hip fractures take months to heal and often need surgery and rehabilitation."
    assert len(deduplicate([chunk(a, "a"), chunk(b, "b")], 0.85)) == 2


def test_threshold_one_keeps_near_duplicates_apart():
    base = " ".join(f"word{i}" for i in range(60))
    assert len(deduplicate([chunk(base, "a"), chunk(base.replace("word30", "x"), "b")], 1.0)) == 2


def test_bundled_corpus_repeats_collapse():
    text = (REPO / "corpus" / "back-and-hip-health.txt").read_text(encoding="utf-8")
    chunks = chunk_document(Document("f", "f", text), FakeEmbedder().count_tokens, Settings())
    passages = deduplicate(chunks, Settings().near_duplicate_threshold)
    assert len(passages) < len(chunks)
    normalised = [" ".join(p.text.lower().split()) for p in passages]
    assert len(set(normalised)) == len(normalised)
    tumours = [p for p in passages if p.text.startswith("Low back pain can be caused by tumors")]
    assert len(tumours) == 1
    assert [loc.line for loc in tumours[0].locations] == [6, 27]
    for passage in passages:
        for loc in passage.locations:
            assert " ".join(text[loc.start : loc.end].split()).lower() == " ".join(passage.text.split()).lower()


def test_stored_signatures_give_the_same_passages_and_only_new_text_is_hashed(monkeypatch):
    from ingest import dedup

    doc = Document("a.txt", "a.txt", (REPO / "corpus" / "back-and-hip-health.txt").read_text(encoding="utf-8"))
    chunks = chunk_document(doc, FakeEmbedder().count_tokens, Settings())
    first = Deduplicator(0.85)
    for c in chunks:
        first.add(c)
    stored = {p.id: row for p, row in zip(first.passages(), first.signatures())}
    added = chunk("A new paragraph about knee braces and how long to wear them each day.", "b.txt")
    expected = deduplicate([added, *chunks], 0.85)
    computed = []
    real = dedup._signature
    monkeypatch.setattr(dedup, "_signature", lambda grams: computed.append(len(grams)) or real(grams))
    again = Deduplicator(0.85, known=stored.get)
    for c in [added, *chunks]:
        again.add(c)
    assert again.passages() == expected and len(computed) == 1  # only the new paragraph
    assert [p.id for p in expected[1:]] == [p.id for p in first.passages()]
    assert (again.signatures()[1:] == first.signatures()).all()
