"""The Streamlit pages driven by AppTest, over a tiny index and the fake embedder.

Ask (the answer box, cards, the URL), the Document view a citation opens,
and the Documents page (status, add, replace, delete, who may do it).
An unsure verdict and a second confident source, which the fake embedder's
geometry cannot be made to give, come from a stub searcher passed in (`ui.resources.SEARCHERS`).
"""

from __future__ import annotations

import dataclasses
import re
import threading
from urllib.parse import parse_qsl

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import ui.access
from index.embed.fake import FakeEmbedder
from index.embed.registry import register_embedder
from index.records import Verdict
from index.search.query import MAX_QUERY_CHARS
from index.search.searcher import Searcher
from index.search.settings import SearchSettings
from index.store.pointer import current_version
from index.store.reader import load
from ingest.documents import DocumentChanged, DocumentNotFound
from ingest.pipeline import build
from tests.helpers import BREAKS, REPO, OtherModelEmbedder, break_index, wait_for, write_pdf
from ui.markdown import escape_markdown
from ui.resources import SEARCHERS
from ui.status import REBUILDING_NOTE

APP = str(REPO / "app.py")
DOCUMENTS = "app_pages/documents.py"
DOCUMENT = "app_pages/document.py"


@pytest.fixture
def app_env(tiny_corpus, tmp_path, monkeypatch, thread_counts_restored):
    """Environment for the app: the tiny corpus, an index folder, the fake embedder (by its registered name)."""
    monkeypatch.setenv("KB_EMBEDDER", "fake")
    monkeypatch.setenv("KB_CORPUS", str(tiny_corpus))
    monkeypatch.setenv("KB_INDEX", str(tmp_path / "idx"))
    for name in ("KB_READ_ONLY", "KB_ADMIN_PASSWORD", "KB_UPLOAD_QUOTA_MB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(ui.access, "PASSWORD_GUESSES", ui.access.PasswordGuesses())  # no guesses of other tests
    st.cache_resource.clear()
    yield tmp_path / "idx"
    st.cache_resource.clear()


@pytest.fixture
def built(app_env, tiny_corpus):
    build(tiny_corpus, app_env, FakeEmbedder())
    return app_env


def new_app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=30)


def ask(question: str, at: AppTest | None = None) -> AppTest:
    at = at or new_app().run()
    return at.text_input(key="query").input(question).run()


def url(at: AppTest, key: str) -> list[str]:
    """The values of `key` in the page's URL."""
    value = at.query_params.get(key, [])
    return value if isinstance(value, list) else [value]


def markdown_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def everything(at: AppTest) -> str:
    """All the text a page shows (Markdown sources), labels included."""
    parts = [e.value for kind in (at.markdown, at.caption, at.info, at.warning, at.error, at.success) for e in kind]
    parts += [t.value for t in at.toast] + [b.label for b in at.button] + [x.label for x in at.expander]
    parts += [s.label for s in at.sidebar.slider] + [m.label for m in at.sidebar.multiselect]
    parts += [h.value for h in at.title] + [h.value for h in at.subheader]
    return "\n".join(parts)


def documents_page() -> AppTest:
    return new_app().run().switch_page(DOCUMENTS).run()


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def settle(at: AppTest, timeout: float = 30) -> AppTest:
    """Rerun until the builds this session asked for have finished and their messages are out."""

    def messages_out() -> bool:  # this run showed the messages (once)
        at.run()
        return "kb_changes" not in at.session_state or not at.session_state["kb_changes"]

    wait_for(messages_out, timeout=timeout, interval=0.1, what="the build to finish and say so")
    return at


def upload(at: AppTest, *files: tuple[str, bytes]) -> AppTest:
    at.get("file_uploader")[0].set_value([(name, data, "text/plain") for name, data in files]).run()
    return button(at, "Add to the knowledge base").click().run()


# --- Ask: the answer on top, cards below ---------------------------------------------------------


def test_answer_box_quotes_the_top_sentence_with_citation_1(built):
    at = ask("how many weeks do vertebral fractures take to heal")
    assert not at.exception and not at.warning
    text = markdown_text(at)
    quote = "“Vertebral fractures take weeks to heal with rest and pain relievers\\.” [\\[1\\]](#source-1)"
    assert quote in text
    assert "Strong match in your documents" in text or "Likely answer from your documents" in text
    assert text.index(quote) < text.index("**\\[1\\]** fractures\\.txt\\, line 1 · characters 0–162")
    assert ":orange-background[Vertebral fractures take weeks to heal with rest and pain relievers\\.]" in text
    assert url(at, "q") == ["how many weeks do vertebral fractures take to heal"]


def test_every_card_is_numbered_and_cites_its_character_span(built):
    at = ask("hip flexors knee vertebral fractures")
    headings = [m.value for m in at.markdown if m.value.startswith("**\\[")]
    assert [re.match(r"\*\*\\\[(\d+)\\\]\*\*", h).group(1) for h in headings] == ["1", "2", "3", "4"]
    assert all(" · characters " in h for h in headings)
    links = open_links(at)
    assert len(links) == 4


def app_searching_with(searcher: type[Searcher]) -> AppTest:
    """The app, its searchers of class `searcher` (a stub) over the live index, passed in through the session."""
    at = new_app()
    at.session_state[SEARCHERS] = lambda config, version: searcher(load(config.index), FakeEmbedder())
    return at.run()


def stub_search(verdict: Verdict, confidences: list[float]) -> AppTest:
    """The app, its search as it is but with the verdict and each hit's confidence replaced."""

    class Stubbed(Searcher):
        def search(self, query, k=5, sources=None, **options):
            answer = super().search(query, k=k, sources=sources, **options)
            hits = tuple(dataclasses.replace(h, confidence=c) for h, c in zip(answer.hits, confidences + [0.0] * k))
            return dataclasses.replace(answer, verdict=verdict, hits=hits)

    return app_searching_with(Stubbed)


def test_unsure_says_these_may_not_answer_and_still_shows_the_closest(built):
    at = ask("how many weeks do vertebral fractures take to heal", stub_search(Verdict.UNSURE, [0.3, 0.2]))
    text = markdown_text(at)
    assert "**Closest passages; these may not answer**" in text and "Strong match" not in text
    assert "[\\[1\\]](#source-1)" in text and "[\\[2\\]](#source-2)" not in text  # one quote when unsure
    assert "**\\[1\\]** fractures\\.txt" in text  # the cards are shown, not folded away


def test_an_answer_short_of_even_odds_is_called_likely_not_strong(built):
    text = markdown_text(
        ask("how many weeks do vertebral fractures take to heal", stub_search(Verdict.ANSWERED, [0.3]))
    )
    assert "**Likely answer from your documents**" in text and "Strong match" not in text
    assert "[\\[1\\]](#source-1)" in text


def test_a_second_confident_source_is_quoted_too(built):
    at = ask("spinal fusion vertebrae bone grafts hip flexors", stub_search(Verdict.ANSWERED, [0.9, 0.8, 0.7]))
    quotes = [m.value for m in at.markdown if m.value.startswith("“")]
    assert len(quotes) == 2 and "#source-1" in quotes[0]
    cited = [re.search(r"#source-(\d)", q).group(1) for q in quotes]
    assert cited[0] != cited[1]


def test_no_answer_is_said_plainly_with_weak_matches_collapsed(built):
    # It shares "hip" with the corpus: there are weak matches, and only the threshold refuses them.
    question = "What is the capital of France, and does it have hip museums?"
    answer = Searcher(load(built), FakeEmbedder()).search(question)
    assert answer.hits and 0 < max(h.similarity for h in answer.hits) < SearchSettings().answer_threshold
    at = ask(question)
    assert at.warning[0].value == Verdict.NOT_ANSWERED.label
    assert not at.expander[0].proto.expanded
    assert "weak matches" in at.expander[0].label and "Closest sources" in at.expander[0].label
    assert not [m for m in at.markdown if m.value.startswith("“")]  # nothing quoted as an answer


def test_the_main_page_speaks_plainly(built, tiny_corpus):
    (tiny_corpus / "questions.jsonl").write_text('{"query": "spinal fusion", "answer": "Spinal fusion"}\n')
    home = new_app().run()
    assert "Answers are quoted from 3 documents" in home.caption[0].value
    for at in (home, ask("how many weeks do vertebral fractures take to heal")):
        shown = everything(at).lower()
        for jargon in ("corpus", "passage", "recall@", "mrr", "file(s)", "1 documents", "score", "similarity"):
            assert jargon not in shown, jargon


def test_filter_and_number_of_results_are_in_the_share_link(built):
    at = new_app().run()
    at.sidebar.multiselect[0].select("hips/flexors.md").run()
    at.sidebar.slider[0].set_value(2).run()
    at.text_input(key="query").input("hip flexors knee vertebral fractures").run()
    headings = [m.value for m in at.markdown if m.value.startswith("**\\[")]
    assert len(headings) == 2 and all(escape_markdown("hips/flexors.md") in h for h in headings)
    assert url(at, "doc") == ["hips/flexors.md"] and url(at, "k") == ["2"]
    shared = new_app()  # the same link, opened elsewhere
    shared.query_params.update(q="hip flexors knee vertebral fractures", k="2", doc="hips/flexors.md")
    shared.run()
    assert shared.sidebar.slider[0].value == 2 and shared.sidebar.multiselect[0].value == ["hips/flexors.md"]
    assert [m.value for m in shared.markdown if m.value.startswith("**\\[")] == headings


def test_query_in_url_is_answered_on_load_with_the_box_filled(built):
    at = new_app()
    at.query_params["q"] = "icing inflamed hip joint"
    at.run()
    assert at.text_input(key="query").value == "icing inflamed hip joint"
    assert "Icing an inflamed hip joint" in markdown_text(at)


def test_the_url_changing_from_outside_brings_its_question_back(built):
    """What Back does: the browser's URL goes back, and the page follows it."""
    at = ask("icing inflamed hip joint")
    at = ask("spinal fusion bone grafts", at)
    assert url(at, "q") == ["spinal fusion bone grafts"]
    at.query_params["q"] = "icing inflamed hip joint"  # Back
    at.run()
    assert at.text_input(key="query").value == "icing inflamed hip joint"
    assert markdown_text(at).index("Icing an inflamed hip joint") < markdown_text(at).index("Spinal fusion")


def test_a_pasted_question_over_the_limit_is_cut_with_a_note(built):
    long_question = "how many weeks do vertebral fractures take to heal " * 100  # 5,100 characters
    at = ask(long_question)
    box = at.text_input(key="query").value
    assert len(box) <= MAX_QUERY_CHARS and long_question.startswith(box + " ")  # cut at a word
    assert "was longer than 2,000 characters" in at.info[0].value
    assert "“Vertebral fractures take weeks" in markdown_text(at)
    at = ask("spinal fusion", at)
    assert not at.info  # the note goes with the long question


def test_a_long_question_in_the_link_is_cut_at_a_word_with_the_note(built):
    at = new_app()
    at.query_params["q"] = "how many weeks do vertebral fractures take to heal " * 2000
    at.run()
    box = at.text_input(key="query").value
    assert 1950 < len(box) <= MAX_QUERY_CHARS
    assert ("how many weeks do vertebral fractures take to heal " * 2000).startswith(box + " ")  # at a word
    assert "was longer than 2,000 characters" in at.info[0].value
    assert url(at, "q") == [box]


def test_example_chips_ask_and_go_once_a_question_is_shown(built):
    at = new_app().run()
    chips = [b for b in at.button if b.label.endswith("?")]
    assert len(chips) == 4
    chips[0].click().run()
    assert at.text_input(key="query").value == chips[0].label
    assert url(at, "q") == [chips[0].label]
    assert not [b for b in at.button if b.label.endswith("?")]  # the answer is first, not the chips


# --- The Document view: "Open" ---------------------------------------------------------------------


def _params(at: AppTest, number: int) -> dict[str, str]:
    """The query of card `number`'s "Open" link."""
    return dict(parse_qsl(open_links(at)[number - 1].proto.query_string))


def open_links(at: AppTest) -> list:
    """The cards' "Open" links (not the pages' links a phone shows at the top)."""
    return [link for link in at.get("page_link") if link.proto.label == "Open the document here"]


def test_open_shows_the_whole_document_with_the_passage_highlighted(built, tiny_corpus):
    at = ask("icing inflamed hip joint")
    card = next(i for i, m in enumerate(at.markdown) if m.value.startswith("**\\[1\\]**"))
    assert "hips/flexors" in at.markdown[card].value.replace("\\", "")
    params = _params(at, 1)
    assert params["source"] == "hips/flexors.md"
    document = new_app().run()
    document.query_params.update(params)
    document.switch_page(DOCUMENT).run()
    assert not document.exception and not document.error
    text = markdown_text(document)
    assert "Hip flexors" in text  # the whole document, not only the passage
    assert "**Hip flexors**" in text  # its heading shown as a heading
    assert ":orange-background[Icing an inflamed hip joint four times daily lowers inflammation\\.]" in text
    assert any(b.label == "Download the original file" for b in document.get("download_button"))
    assert "characters 175–240" in document.caption[0].value


def test_a_document_view_never_reads_outside_the_corpus(built, tiny_corpus):
    (tiny_corpus.parent / "secret.txt").write_text("root:x:0:0", encoding="utf-8")
    for source in ("../secret.txt", str(tiny_corpus.parent / "secret.txt")):
        document = new_app().run()
        document.query_params["source"] = source
        document.switch_page(DOCUMENT).run()
        assert not document.exception
        assert "not in the knowledge base" in document.error[0].value
        assert "root:x" not in everything(document)


def test_long_documents_are_paginated_at_the_passage(app_env, tiny_corpus):
    filler = "\n\n".join(f"Paragraph {i} about nothing in particular, filling the page." for i in range(600))
    (tiny_corpus / "long.txt").write_text(filler + "\n\nZebras sleep standing up in the savanna.", encoding="utf-8")
    build(tiny_corpus, app_env, FakeEmbedder())
    at = ask("zebras sleep standing up savanna")
    params = _params(at, 1)
    assert params["source"] == "long.txt"
    document = new_app().run()
    document.query_params.update(params)
    document.switch_page(DOCUMENT).run()
    pager = document.number_input[0]
    assert pager.value == pager.proto.max > 1  # opened at the last page, where the passage is
    assert ":orange-background[Zebras sleep standing up in the savanna\\.]" in markdown_text(document)
    assert "Paragraph 0 " not in markdown_text(document)


@pytest.fixture
def pdf_reads(monkeypatch) -> list[str]:
    """Every PDF the process opens from now on (pypdf's reader, however the loader imports it)."""
    import pypdf

    opened: list[str] = []

    class CountingReader(pypdf.PdfReader):
        def __init__(self, stream, *args, **kwargs) -> None:
            opened.append(str(stream))
            super().__init__(stream, *args, **kwargs)

    monkeypatch.setattr(pypdf, "PdfReader", CountingReader)
    return opened


@pytest.fixture
def downloads(monkeypatch) -> dict:
    """Each download button's deferred data, by file name: calling one is what clicking Download does."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    registered: dict = {}
    add = MediaFileManager.add_deferred

    def add_deferred(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        registered[file_name] = data_callable
        return add(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    return registered


def open_document(**params: str) -> AppTest:
    document = new_app().run()
    document.query_params.update(params)
    return document.switch_page(DOCUMENT).run()


def test_the_document_page_serves_the_indexed_text_without_reading_the_file(app_env, tiny_corpus, pdf_reads):
    """Every view parsed the file again: 13 s a view for a hostile PDF the build had skipped (issue 23, N2)."""
    write_pdf(tiny_corpus / "okapi.pdf", ["Okapi live in the rainforest of Congo.", "Giraffes are their relatives."])
    build(tiny_corpus, app_env, FakeEmbedder())
    pdf_reads.clear()
    document = open_document(source="okapi.pdf")
    assert not document.exception and not document.error
    assert "Okapi live in the rainforest of Congo\\." in markdown_text(document)
    assert pdf_reads == []


def test_a_document_the_build_skipped_shows_only_its_reason(app_env, tiny_corpus, pdf_reads, downloads):
    (tiny_corpus / "broken.pdf").write_bytes(b"%PDF-1.4 " + b"not a PDF at all " * 100)
    report = build(tiny_corpus, app_env, FakeEmbedder())
    (reason,) = [s.reason for s in report.skipped if s.source == "broken.pdf"]
    pdf_reads.clear()
    document = open_document(source="broken.pdf")
    assert not document.exception and pdf_reads == []
    assert document.error[0].value == escape_markdown(f"broken.pdf was skipped when the index was built: {reason}.")
    assert not document.get("download_button") and not downloads and not document.markdown


def test_an_edited_file_keeps_showing_the_text_its_citations_index(built, tiny_corpus):
    at = ask("icing inflamed hip joint")
    params = _params(at, 1)
    (tiny_corpus / "hips" / "flexors.md").write_text("Completely different words now.", encoding="utf-8")
    document = open_document(**params)
    assert not document.exception and not document.error
    text = markdown_text(document)
    assert ":orange-background[Icing an inflamed hip joint four times daily lowers inflammation\\.]" in text
    assert "Completely different" not in text
    assert "changed after the index was built" in document.info[0].value


def test_download_serves_the_indexed_file_and_never_what_replaced_it(built, tiny_corpus, downloads):
    """A file swapped for a link to /etc/passwd after the page was shown was served (issue 23, N3)."""
    original = (tiny_corpus / "fractures.txt").read_bytes()
    document = open_document(source="fractures.txt")
    assert not document.exception
    assert downloads["fractures.txt"]() == original  # clicked before anything changed
    secret = tiny_corpus.parent / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    (tiny_corpus / "fractures.txt").unlink()
    (tiny_corpus / "fractures.txt").symlink_to(secret)
    with pytest.raises(DocumentNotFound, match="a link"):
        downloads["fractures.txt"]()
    (tiny_corpus / "fractures.txt").unlink()
    (tiny_corpus / "fractures.txt").write_bytes(b"other bytes")
    with pytest.raises(DocumentChanged, match="changed since the index was built"):
        downloads["fractures.txt"]()


def test_the_documents_page_download_follows_the_same_rule(built, tiny_corpus, downloads):
    at = documents_page()
    at.selectbox(key="kb_manage").select("fractures.txt").run()
    assert not at.exception
    assert downloads["fractures.txt"]() == (tiny_corpus / "fractures.txt").read_bytes()
    secret = tiny_corpus.parent / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    (tiny_corpus / "fractures.txt").unlink()
    (tiny_corpus / "fractures.txt").symlink_to(secret)
    with pytest.raises(DocumentNotFound):
        downloads["fractures.txt"]()


# --- The Documents page ----------------------------------------------------------------------------


def test_documents_page_lists_every_document_with_its_status(built, tiny_corpus):
    (tiny_corpus / "new.md").write_text("A note added after the build.", encoding="utf-8")
    at = documents_page()
    assert not at.exception
    rows = at.dataframe[0].value
    assert list(rows["document"]) == ["copy.txt", "fractures.txt", "hips/flexors.md", "new.md"]
    assert list(rows["status"]) == ["indexed", "indexed", "indexed", "pending rebuild"]
    assert set(rows.columns) >= {"document", "type", "size", "passages", "added", "status", "why"}
    assert "4 documents · 3 indexed · 1 pending rebuild" in at.caption[0].value


def test_an_upload_is_added_and_then_answers(built, tiny_corpus):
    at = upload(documents_page(), ("knees.txt", b"Knee cartilage wears down with age and running."))
    settle(at)
    assert any(t.value == escape_markdown("Added uploads/knees.txt") for t in at.toast)
    assert (tiny_corpus / "uploads" / "knees.txt").exists()
    assert "“Knee cartilage wears down with age and running\\.”" in markdown_text(ask("knee cartilage running"))


def test_a_binary_txt_upload_is_reported_as_skipped_not_added(built):
    at = upload(documents_page(), ("report.txt", b"\x00\x01\x02\x03 binary \x00"))
    settle(at)
    toasts = [t.value for t in at.toast]
    assert escape_markdown("Skipped uploads/report.txt: binary file, not text") in toasts[0]
    assert not any(t.startswith("Added") for t in toasts)
    assert "could not be read" in at.warning[0].value
    rows = at.dataframe[0].value.set_index("document")
    assert rows.loc["uploads/report.txt", "status"] == "skipped"
    assert rows.loc["uploads/report.txt", "why"] == "binary file, not text"


def test_replace_by_same_name_asks_and_then_only_the_new_text_answers(built, tiny_corpus):
    at = upload(documents_page(), ("zentrofin.txt", b"Zentrofin dosage: take it twice daily with food."))
    settle(at)
    at = upload(at, ("zentrofin.txt", b"Zentrofin dosage: take it once weekly on an empty stomach."))
    assert "Replace it with the zentrofin.txt you chose?" in at.warning[0].value.replace("\\", "")
    assert (tiny_corpus / "uploads" / "zentrofin.txt").read_bytes().startswith(b"Zentrofin dosage: take it twice")
    button(at, "Replace").click().run()
    settle(at)
    assert any(t.value == escape_markdown("Replaced uploads/zentrofin.txt") for t in at.toast)
    assert sorted(p.name for p in (tiny_corpus / "uploads").iterdir()) == ["zentrofin.txt"]
    shown = markdown_text(ask("zentrofin dosage how often"))
    assert "once weekly" in shown and "twice daily" not in shown


def test_choosing_a_taken_name_twice_asks_once_about_the_newest(built, tiny_corpus):
    """Two pending "replace?" for one document shared their buttons' keys: the page failed until the tab closed."""
    at = upload(documents_page(), ("zentrofin.txt", b"Zentrofin dosage: take it twice daily with food."))
    settle(at)
    at = upload(at, ("zentrofin.txt", b"Zentrofin dosage: take it once weekly on an empty stomach."))
    at = upload(at, ("zentrofin.txt", b"Zentrofin dosage: take it every morning."))
    assert not at.exception and not at.error
    asks = [w.value for w in at.warning if "Replace it with" in w.value]
    assert len(asks) == 1
    button(at, "Replace").click().run()
    settle(at)
    assert not at.exception and not at.error
    assert (tiny_corpus / "uploads" / "zentrofin.txt").read_bytes() == b"Zentrofin dosage: take it every morning."


def test_keeping_the_current_document_changes_nothing(built, tiny_corpus):
    at = upload(documents_page(), ("fractures.txt", b"Fractures heal in a day."))
    button(at, "Keep the current one").click().run()
    assert not at.warning
    assert (tiny_corpus / "fractures.txt").read_text(encoding="utf-8").startswith("Vertebral fractures take weeks")


def test_delete_asks_first_and_then_the_text_no_longer_answers(built, tiny_corpus):
    question = "icing inflamed hip joint"
    assert "Icing an inflamed hip joint" in markdown_text(ask(question))
    at = documents_page()
    at.selectbox(key="kb_manage").select("hips/flexors.md").run()
    button(at, "Delete…").click().run()
    assert (tiny_corpus / "hips" / "flexors.md").exists()  # not before the confirmation
    assert "Delete hips/flexors.md?" in at.warning[0].value.replace("\\", "")
    button(at, "Delete").click().run()
    assert not (tiny_corpus / "hips" / "flexors.md").exists()
    settle(at)
    assert any("Deleted hips/flexors.md" in t.value.replace("\\", "") for t in at.toast)
    assert "Icing an inflamed hip joint" not in markdown_text(ask(question))


def test_rebuild_with_nothing_changed_says_so(built):
    at = documents_page()
    button(at, "Rebuild from the folder").click().run()
    settle(at)
    assert at.success[0].value == escape_markdown("Nothing changed: the index already matches the documents folder.")


def test_messages_belong_to_the_session_that_caused_them(built):
    at = upload(documents_page(), ("knees.txt", b"Knee cartilage wears down with age and running."))
    settle(at)
    assert at.success or at.toast
    other = documents_page()  # another visitor, afterwards
    assert not other.success and not other.toast and not other.warning


def progress_text(at: AppTest) -> str:
    return at.get("progress")[0].proto.text.replace("\\", "")


class GatedEmbedder(FakeEmbedder):
    """The fake embedder, except that the background build waits at embedding until the test opens `gate`."""

    gate = threading.Event()

    def encode(self, texts, progress=None):
        if threading.current_thread().name == "kb-build" and not self.gate.wait(60):
            raise TimeoutError("the test never opened the gate")
        return super().encode(texts, progress)


@pytest.fixture
def gated(built, monkeypatch):
    register_embedder("gated", lambda config: GatedEmbedder())
    monkeypatch.setenv("KB_EMBEDDER", "gated")
    GatedEmbedder.gate.clear()
    yield GatedEmbedder.gate
    GatedEmbedder.gate.set()


def test_questions_during_a_rebuild_are_answered_from_the_old_index_then_the_new(gated, built, tiny_corpus):
    (tiny_corpus / "knees.txt").write_text("Knee cartilage wears down with age and running.", encoding="utf-8")
    (tiny_corpus / "hips" / "flexors.md").unlink()
    old_source, new_source = escape_markdown("hips/flexors.md, line"), escape_markdown("knees.txt, line")
    question = "hip flexors lift the knee; knee cartilage wears down with running"
    before = current_version(built)
    at = documents_page()
    button(at, "Rebuild from the folder").click().run()
    progress = at.get("progress")[0].proto.text.replace("\\", "")
    assert "Answers come from the current index meanwhile" in progress
    for _ in range(3):  # the build is held mid-embedding: every answer is the old index's, whole
        asked = ask(question)
        assert not asked.exception and not asked.error
        assert old_source in markdown_text(asked) and new_source not in markdown_text(asked)
        assert current_version(built) == before
    gated.set()
    settle(at)
    asked = ask(question)
    assert new_source in markdown_text(asked) and old_source not in markdown_text(asked)


def test_progress_says_stage_counts_and_that_answers_continue(gated, built, tiny_corpus):
    (tiny_corpus / "knees.txt").write_text("Knee cartilage wears down with age and running.", encoding="utf-8")
    at = documents_page()
    button(at, "Rebuild from the folder").click().run()
    text = wait_for(
        lambda: "Learning the new text" in (shown := progress_text(at.run())) and shown,
        timeout=20,
        what="the progress to reach the embedding stage",
    )
    assert "Read 4 of 4 files. Learning the new text: 0 of " in text
    assert "Answers come from the current index meanwhile." in text
    assert "0 of 0" not in text


def test_adding_during_a_rebuild_is_queued_and_said(gated, built, tiny_corpus):
    (tiny_corpus / "knees.txt").write_text("Knee cartilage wears down with age and running.", encoding="utf-8")
    at = documents_page()
    button(at, "Rebuild from the folder").click().run()
    at = upload(at, ("rowing.txt", b"Indoor rowing strengthens the posterior chain."))
    assert any(t.value == escape_markdown(REBUILDING_NOTE) for t in at.toast)
    gated.set()
    settle(at)
    assert any(t.value == escape_markdown("Added uploads/rowing.txt") for t in at.toast)
    assert "uploads/rowing.txt" in load(built).sources


def test_uploads_over_the_quota_are_refused(built, monkeypatch):
    monkeypatch.setenv("KB_UPLOAD_QUOTA_MB", "0.0001")  # about 100 bytes
    at = upload(documents_page(), ("big.txt", b"Some words about knees. " * 10))
    assert any("does not fit" in t.value for t in at.toast)
    assert "of 0 MB" in at.caption[1].value


# --- Who may change things -------------------------------------------------------------------------


def test_read_only_hides_every_admin_action(built, monkeypatch):
    monkeypatch.setenv("KB_READ_ONLY", "1")
    at = documents_page()
    assert not at.get("file_uploader")
    labels = [b.label for b in at.button]
    assert "Add to the knowledge base" not in labels and "Rebuild from the folder" not in labels
    at.selectbox(key="kb_manage").select("fractures.txt").run()
    assert "Delete…" not in [b.label for b in at.button]
    assert "read-only" in at.info[0].value
    assert "“Vertebral fractures take weeks" in markdown_text(ask("how many weeks do vertebral fractures take"))


def test_read_only_offers_no_build_when_the_index_is_missing(app_env, monkeypatch):
    monkeypatch.setenv("KB_READ_ONLY", "1")
    at = new_app().run()
    assert "There is no index yet" in at.error[0].value
    assert not [b for b in at.button if b.label == "Build the index now"]


def test_a_password_protects_changes_and_unlocks_them(built, monkeypatch):
    monkeypatch.setenv("KB_ADMIN_PASSWORD", "open sesame")
    at = documents_page()
    assert not at.get("file_uploader")
    at.text_input[0].input("wrong")  # a form: typed and submitted in one go
    at.button[0].click().run()
    assert "not the admin password" in at.error[0].value and not at.get("file_uploader")
    at.text_input[0].input("open sesame")
    at.button[0].click().run()
    assert at.get("file_uploader") and not at.error


def test_wrong_passwords_are_limited_across_every_session(built, monkeypatch):
    """Each session waited a second per wrong guess, so parallel sessions multiplied the guesses (issue 23, N10)."""
    monkeypatch.setattr(ui.access, "PASSWORD_GUESSES", ui.access.PasswordGuesses(allowed=2, window=600))
    monkeypatch.setenv("KB_ADMIN_PASSWORD", "open sesame")
    for guess in ("wrong", "still wrong"):  # two browser sessions, one guess each
        at = documents_page()
        at.text_input[0].input(guess)
        at.button[0].click().run()
        assert "not the admin password" in at.error[0].value
    at = documents_page()  # a third session, even with the right password, waits like everyone
    at.text_input[0].input("open sesame")
    at.button[0].click().run()
    assert not at.get("file_uploader")
    assert re.fullmatch(r"Too many wrong passwords were tried lately; try again in \d+ minutes?\.", at.error[0].value)


def test_a_password_can_come_from_streamlit_secrets(built):
    at = new_app()
    at.secrets["admin_password"] = "from secrets"
    at.run().switch_page(DOCUMENTS).run()
    assert not at.get("file_uploader") and "Unlock editing" in [b.label for b in at.button]


# --- Problems, said plainly ------------------------------------------------------------------------


def test_missing_index_shows_error_and_build_button(app_env):
    at = new_app().run()
    assert "There is no index yet" in at.error[0].value
    assert str(app_env) not in at.error[0].value
    assert any(b.label == "Build the index now" for b in at.button)


@pytest.mark.parametrize("how", BREAKS)
def test_damaged_index_is_explained_without_server_paths_or_a_traceback(built, how):
    broken = break_index(built, how)
    at = new_app().run()
    assert not at.exception
    shown = at.error[0].value.replace("\\", "")
    assert "The index is damaged" in shown and "Build it again with the button below" in shown
    assert broken.rsplit("/", 1)[-1] in shown
    assert str(built) not in shown and "Traceback" not in shown and "python -m ingest" not in shown
    assert any(b.label == "Build the index now" for b in at.button)


@pytest.mark.parametrize("garbage", [b"\xd6\xff", b"../../etc\n"], ids=["not UTF-8", "outside"])
def test_garbage_in_current_shows_the_fix_not_a_traceback(built, garbage):
    """The page says what is wrong and offers the rebuild, which repairs it."""
    (built / "CURRENT").write_bytes(garbage)
    at = new_app().run()
    assert not at.exception
    shown = at.error[0].value.replace("\\", "")
    assert "The index is damaged: index pointer CURRENT" in shown and "Build it again with the button below" in shown
    assert str(built) not in shown and "Traceback" not in shown  # no server paths
    button(at, "Build the index now").click().run()
    settle(at)
    assert not at.error and "Kyphoplasty inflates a balloon" in markdown_text(ask("kyphoplasty balloon vertebra"))


def test_index_of_another_model_is_refused_with_the_fix(app_env, tiny_corpus):
    build(tiny_corpus, app_env, OtherModelEmbedder())
    at = new_app().run()
    assert not at.exception
    shown = at.error[0].value.replace("\\", "")
    assert "built with another language model" in shown and "test/other-model" in shown
    assert str(app_env) not in shown


def test_build_button_repairs_a_damaged_index(built):
    break_index(built, "tampered")
    at = new_app().run()
    button(at, "Build the index now").click().run()
    settle(at)
    assert not at.exception and not at.error
    assert "Kyphoplasty inflates a balloon" in markdown_text(ask("kyphoplasty balloon compressed vertebra"))


def test_document_markup_is_shown_literally(app_env, tiny_corpus):
    (tiny_corpus / "evil.txt").write_text(
        "Hostile page <script>alert(1)</script> with [a link](javascript:alert(1)) and **bold** and $x$ and :red[red].",
        encoding="utf-8",
    )
    build(tiny_corpus, app_env, FakeEmbedder())
    at = ask("hostile page script link bold")
    text = markdown_text(at)
    assert escape_markdown("<script>alert(1)</script>") in text
    assert escape_markdown("[a link](javascript:alert(1))") in text
    assert "**bold**" not in text and ":red[red]" not in text


def test_quality_panel_scores_the_question_set_in_plain_words(built, tiny_corpus):
    (tiny_corpus / "questions.jsonl").write_text(
        '{"query": "kyphoplasty balloon compressed vertebra", "answer": "Kyphoplasty inflates a balloon"}\n'
        '{"query": "What is the capital of France?", "answer": null}\n',
        encoding="utf-8",
    )
    at = documents_page()
    button(at, "Check now").click().run()
    text = markdown_text(at)
    assert "The right passage came first for **100%** of 1 question" in text
    assert "no answer to **1 of 1**" in text


def test_a_broken_question_set_is_explained_without_the_server_path(built, tiny_corpus):
    (tiny_corpus / "questions.jsonl").write_text('{"query": "kyphoplasty"\n', encoding="utf-8")
    at = documents_page()
    button(at, "Check now").click().run()
    assert not at.exception
    shown = " ".join(e.value for e in at.error).replace("\\", "")  # Markdown escapes
    assert "questions.jsonl:1" in shown and str(tiny_corpus) not in shown


def test_an_unexpected_error_is_logged_and_shown_without_details(built, caplog):
    class Broken(Searcher):
        def search(self, query, k=5, sources=None, **options):
            raise RuntimeError(f"boom in {built}/v-1/passages.jsonl")

    at = ask("spinal fusion", app_searching_with(Broken))
    assert not at.exception
    assert "Something went wrong while showing this page" in at.error[0].value
    assert "boom" not in everything(at) and str(built) not in everything(at)
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records if r.name == "kb.app")


# --- Every mention, did you mean, filters ---------------------------------------------------------


def test_every_mention_mode_lists_each_place_with_its_own_link(built):
    at = new_app().run()
    at.radio(key="mode").set_value("mentions").run()
    at.text_input(key="query").input('"spinal fusion"').run()
    shown = everything(at)
    assert "**2 mentions** in 2 documents" in shown
    assert url(at, "mode") == ["mentions"] and url(at, "q") == ['"spinal fusion"']
    assert {x.label for x in at.expander} == {"fractures\\.txt (1)", "copy\\.txt (1)"}
    shared = new_app()  # the same link, opened elsewhere
    shared.query_params.update(q='"spinal fusion"', mode="mentions")
    shared.run()
    assert shared.radio(key="mode").value == "mentions" and "**2 mentions**" in everything(shared)


def test_filters_are_in_the_sidebar_and_the_share_link(built):
    at = new_app().run()
    at.multiselect(key="filter_type").select("md").run()
    at.text_input(key="query").input("spinal fusion bone grafts").run()
    headings = [m.value for m in at.markdown if m.value.startswith("**\\[")]
    assert headings and all(escape_markdown("hips/flexors.md") in h for h in headings)
    assert url(at, "type") == ["md"]
    shared = new_app()
    shared.query_params.update(q="spinal fusion bone grafts", type="md", after="2000-01-01")
    shared.run()
    assert shared.multiselect(key="filter_type").value == ["md"]
    assert str(shared.date_input(key="filter_after").value) == "2000-01-01"
    assert [m.value for m in shared.markdown if m.value.startswith("**\\[")] == headings


def test_did_you_mean_offers_the_corrected_question_and_one_click_asks_it(built):
    at = ask("spinal fusoin bone grafts")
    offer = next(b for b in at.button if b.label.startswith("Did you mean"))
    assert offer.label == f"Did you mean: {escape_markdown('spinal fusion bone grafts')}"
    offer.click().run()
    assert at.text_input(key="query").value == "spinal fusion bone grafts"
    assert url(at, "q") == ["spinal fusion bone grafts"]
