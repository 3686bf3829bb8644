"""Every mention of a phrase: exhaustive, whole words, case and accents ignored, each span the stored text."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest

from index.__main__ import main as index_main
from index.search.filters import Where
from index.search.mentions import MentionFinder, Phrase, folded_text
from index.store.reader import load
from ingest.pipeline import build
from tests.helpers import REPO, write_corpus

FILLER = "This sentence only pads the paragraph so that it becomes a passage of its own in the index. " * 3
DOCS = {
    "a.txt": f"The Café opened. {FILLER}\n\nA cafe, a CAFÉ and a cafés.\n\nHip\nflexors and hip-flexors.",
    "guides/b.md": f"# Stretching\n\nStretch the hip flexors daily. {FILLER}\n\nKnees bend. {FILLER}",
    "c.txt": f"Knees lift. {FILLER}\n\nThe muscle of the hip. {FILLER}\n\nStraße und Strasse. Naïve naive.",
}


@pytest.fixture
def finder(tmp_path, fake_embedder) -> MentionFinder:
    build(write_corpus(tmp_path / "corpus", DOCS), tmp_path / "idx", fake_embedder)
    return MentionFinder(load(tmp_path / "idx"))


def oracle(phrase: str, texts: dict[str, str]) -> dict[str, list[str]]:
    """A plain scan: the phrase's words as a case-insensitive whole-word regex, on accent-stripped text."""

    def strip(text: str) -> str:  # NFD of these texts keeps one character per base letter
        return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))

    pattern = re.compile(r"\b" + r"\s+".join(map(re.escape, strip(phrase).split())) + r"\b", re.I)
    return {name: pattern.findall(strip(text)) for name, text in texts.items() if pattern.search(strip(text))}


def spans_hold(finder: MentionFinder, found) -> bool:
    texts = {d.source: finder.stored.texts.text(row) for row, d in enumerate(finder.stored.documents)}
    return all(texts[d.source][m.start : m.end] == m.text for d in found.documents for m in d.mentions)


@pytest.mark.parametrize("phrase", ["cafe", "café", "hip flexors", "flexors", "knees", "naive", "strasse"])
def test_a_quoted_phrase_is_found_everywhere_the_plain_scan_finds_it(finder, phrase):
    found = finder.find(f'"{phrase}"')
    texts = {d.source: finder.stored.texts.text(row) for row, d in enumerate(finder.stored.documents)}
    expected = oracle(phrase, texts)
    if phrase != "strasse":  # "Straße" folds to "strasse" too, which the plain scan cannot see
        assert {d.source: d.count for d in found.documents} == {k: len(v) for k, v in expected.items()}
    assert spans_hold(finder, found)


def test_case_accents_line_breaks_and_whole_words(finder):
    cafe = finder.find("cafe")
    assert [m.text for m in cafe.documents[0].mentions] == ["Café", "cafe", "CAFÉ"]  # not "cafés"
    assert [m.text for m in finder.find("strasse").documents[0].mentions] == ["Straße", "Strasse"]
    flexors = finder.find('"hip flexors"')
    assert {(d.source, m.text) for d in flexors.documents for m in d.mentions} == {
        ("a.txt", "Hip\nflexors"),  # any whitespace between the words; "hip-flexors" is another spelling
        ("guides/b.md", "hip flexors"),
    }
    line = flexors.documents[0].mentions[0].line
    assert line == finder.stored.texts.text(0).count("\n", 0, flexors.documents[0].mentions[0].start) + 1


def test_words_without_quotes_must_share_a_passage(finder):
    found = finder.find("knees hip")  # c.txt has both, in different passages; b.md has no "hip" near "knees"
    assert found.total == 0
    found = finder.find("stretch hip")
    assert {d.source for d in found.documents} == {"guides/b.md"}
    assert sorted(m.text.lower() for m in found.documents[0].mentions) == ["hip", "stretch"]


def test_stopwords_only_are_scanned_everywhere(finder):
    found = finder.find('"the"')
    texts = {d.source: finder.stored.texts.text(row) for row, d in enumerate(finder.stored.documents)}
    assert found.total == sum(len(v) for v in oracle("the", texts).values()) > 0


def test_where_limits_the_documents(finder):
    assert {d.source for d in finder.find("hip", Where.parse(["folder=guides"])).documents} == {"guides/b.md"}
    assert {d.source for d in finder.find("hip", Where.parse(["type=txt"])).documents} == {"a.txt", "c.txt"}


def test_empty_phrase_is_refused():
    with pytest.raises(ValueError, match="the phrase is empty"):
        Phrase.parse(' "" ')


def test_folded_text_maps_every_character_back():
    text = "Straße İs ÉTÉ e\u0301te ﬁne"
    folded, starts, ends = folded_text(text)
    assert folded == "strasse is ete ete fine"
    assert len(starts) == len(ends) == len(folded)
    assert text[starts[0] : ends[6]] == "Straße"


def test_hip_flexors_on_the_bundled_corpus_equals_a_plain_scan(tmp_path, monkeypatch, capsys, thread_counts_restored):
    monkeypatch.setenv("KB_EMBEDDER", "fake")
    from ingest.__main__ import main as ingest_main

    assert ingest_main(["--corpus", str(REPO / "corpus"), "--index", str(tmp_path / "idx")]) == 0
    capsys.readouterr()
    assert index_main(["mentions", "hip flexors", "--json", "--index", str(tmp_path / "idx")]) == 0
    found = json.loads(capsys.readouterr().out)
    assert set(found) == {"phrase", "total", "documents"}
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted((REPO / "corpus").glob("*.txt"))}
    plain = sum(len(re.findall(r"\bhip\s+flexors\b", text, re.I)) for text in texts.values())
    assert found["total"] == plain == sum(d["count"] for d in found["documents"]) > 0
    for doc in found["documents"]:
        assert set(doc) == {"source", "doc_id", "count", "mentions"}
        for m in doc["mentions"]:
            assert set(m) == {"start", "end", "line", "page", "text"}
            assert texts[doc["source"]][m["start"] : m["end"]] == m["text"]
            assert m["text"].lower() == "hip flexors"
            assert m["line"] == texts[doc["source"]].count("\n", 0, m["start"]) + 1
