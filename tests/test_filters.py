"""Filters by type, folder, file date, tag and title: applied before ranking, with clear errors."""

from __future__ import annotations

import json
import os
from datetime import date

import pytest

from index.__main__ import main as index_main
from index.search.filters import TYPE_NAMES, TYPES, FilterError, Where, document_type, fold
from index.search.searcher import Searcher
from index.store.reader import load
from ingest.loaders import SUPPORTED_SUFFIXES
from ingest.pipeline import build
from tests.helpers import write_corpus, write_pdf

# Every document is about fractures, so without a filter the text files (more words on it) rank first.
MIXED = {
    "notes/fractures.txt": "Vertebral fractures take weeks to heal. Fractures of the spine heal with rest.",
    "notes/more.txt": "A fracture of a vertebra heals in weeks; fractures need rest and pain relief.",
    "guide.md": (
        "---\ntitle: Caring for a Broken Back\ntags: [spine, recovery]\n---\n\n"
        "Broken vertebrae heal over weeks of careful rest."
    ),
    "page.html": (
        '<html><head><title>Hip news</title><meta name="keywords" content="hips, Exercise"></head>'
        "<body><p>The hip flexors lift the knee.</p></body></html>"
    ),
}
PDF_PAGES = {
    "leaflets/a.pdf": ["Leaflet one says fractures heal slowly."],
    "leaflets/b.pdf": ["Leaflet two: a fracture needs a doctor."],
    "leaflets/old/c.pdf": ["Leaflet three lists fracture clinics."],
}
OLD, NEW = 1_600_000_000, 1_800_000_000  # 2020-09-13 and 2027-01-15


@pytest.fixture
def mixed(tmp_path, fake_embedder) -> Searcher:
    corpus = write_corpus(tmp_path / "corpus", MIXED)
    for name, pages in PDF_PAGES.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        write_pdf(corpus / name, pages)
    for path in corpus.rglob("*.*"):
        stamp = OLD if path.suffix == ".txt" or path.name == "c.pdf" else NEW
        os.utime(path, (stamp, stamp))
    build(corpus, tmp_path / "idx", fake_embedder)
    return Searcher(load(tmp_path / "idx"), fake_embedder)


def sources(answer) -> list[str]:
    return [hit.passage.location.source for hit in answer.hits]


def test_every_supported_suffix_has_a_type():
    assert set(TYPES) == SUPPORTED_SUFFIXES
    assert [document_type(s) for s in ("a.PDF", "b.htm", "c.markdown", "d")] == ["pdf", "html", "md", "txt"]


def test_type_filter_gives_k_hits_from_inside_it(mixed):
    unfiltered = mixed.search("how long do vertebral fractures take to heal", k=3)
    assert not all(s.endswith(".pdf") for s in sources(unfiltered))  # the filter has something to do
    answer = mixed.search("how long do vertebral fractures take to heal", k=3, where=Where.parse(["type=pdf"]))
    assert len(answer.hits) == 3
    assert all(s.endswith(".pdf") for s in sources(answer))


def test_folder_date_tag_and_title_filters(mixed):
    ask = "fractures heal"

    def found(*conditions: str) -> set[str]:
        return set(sources(mixed.search(ask, k=10, where=Where.parse(conditions))))

    assert found("folder=leaflets") == set(PDF_PAGES)
    assert found("folder=leaflets/old") == {"leaflets/old/c.pdf"}
    assert found("after=2026-01-01") == {"guide.md", "page.html", "leaflets/a.pdf", "leaflets/b.pdf"}
    assert found("before=2026-01-01") == {"notes/fractures.txt", "notes/more.txt", "leaflets/old/c.pdf"}
    assert found("tag=SPINE") == {"guide.md"}
    assert found("tag=RECOVERY", "tag=hips") == {"guide.md"}
    assert found("title=broken back") == {"guide.md"}
    assert found("title=broken bac") == set()  # whole words of the title
    assert found("type=pdf", "type=md") == {*PDF_PAGES, "guide.md"}  # one key's values are alternatives
    assert found("type=pdf", "after=2026-01-01") == {"leaflets/a.pdf", "leaflets/b.pdf"}  # keys all hold
    assert found("tag=nothing") == set()


def test_titles_and_tags_are_stored_with_each_document(mixed):
    docs = {d.source: d for d in mixed.stored.documents}
    assert docs["guide.md"].title == "Caring for a Broken Back"
    assert docs["guide.md"].tags == ("spine", "recovery")
    assert docs["leaflets/a.pdf"].pages == (0,)
    assert mixed.stored.described


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        (["colour=red"], r"unknown filter 'colour'; filters are type, folder, after, before, tag or title"),
        (["type=xls"], r"type must be one of pdf, html, md, docx, txt, jsonl, got 'xls'"),
        (["after=yesterday"], r"after must be a date as YYYY-MM-DD"),
        (["pdf"], r"filter 'pdf' is not key=value"),
        (["folder=../secrets"], r"folder must be a folder of the corpus"),
    ],
)
def test_bad_filters_name_what_is_allowed(conditions, message):
    with pytest.raises(FilterError, match=message):
        Where.parse(conditions)


def test_filters_round_trip_through_strings():
    where = Where.parse(["type=PDF", "folder=/leaflets/", "after=2026-01-01", "tag=spine", "title=Back"])
    assert where.types == ("pdf",) and where.folders == ("leaflets",) and where.after == date(2026, 1, 1)
    assert Where.parse(where.to_strings()) == where
    assert not Where.parse([]) and set(TYPE_NAMES) == set(TYPES.values())
    assert fold("Été") == "ete"


def test_title_filter_on_an_index_without_titles_asks_for_a_rebuild(mixed):
    folder = mixed.stored.path
    path = folder / "documents.json"
    entries = json.loads(path.read_text(encoding="utf-8"))
    for entry in entries:
        del entry["tags"], entry["title"], entry["pages"]
    old = load(folder.parent)
    old._documents = entries_io(entries)  # as a version written before titles were kept reads back
    with pytest.raises(FilterError, match="built before documents' titles and tags were kept.*python -m ingest"):
        Searcher(old, mixed.embedder).search("fractures", where=Where.parse(["tag=spine"]))
    assert Searcher(old, mixed.embedder).search("fractures", where=Where.parse(["type=pdf"])).hits


def entries_io(entries):
    import io

    return io.BytesIO(json.dumps(entries).encode())


def test_cli_where(tmp_path, fake_embedder, monkeypatch, capsys, thread_counts_restored, mixed):
    monkeypatch.setenv("KB_EMBEDDER", "fake")
    code = index_main(
        ["query", "fractures heal", "--json", "-k", "2", "--where", "type=pdf", "--index", str(tmp_path / "idx")]
    )
    answer = json.loads(capsys.readouterr().out)
    assert code == 0 and [h["source"][-4:] for h in answer["hits"]] == [".pdf", ".pdf"]
    with pytest.raises(SystemExit) as stopped:
        index_main(["query", "x", "--where", "kind=pdf", "--index", str(tmp_path / "idx")])
    assert stopped.value.code == 2
    assert "unknown filter 'kind'; filters are type, folder" in capsys.readouterr().err
