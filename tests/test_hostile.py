"""Hostile and odd input: questions that are empty, huge or in other scripts; markup in documents, names and questions.

Sensible behaviour, decided here:
- A question with nothing in it (empty, spaces, control characters only) is
  not searched: the library returns no hits and "not answered", the CLI
  refuses it with a message (exit 2), the app asks for a question in words.
- A very long question is cut to `MAX_QUERY_CHARS` at a word boundary (the
  model reads about half of that anyway) and answered as usual; the CLI says
  it was cut, and the app cuts a longer paste or `?q=` in the box, with a note.
- Other scripts and emoji are searched like anything else.
- Text from documents, file names, upload names and error messages reaches
  the browser only through `escape_markdown` (or `st.text`), so HTML,
  `<script>`, `javascript:` links and Markdown show literally; the terminal
  gets no control characters from documents.
"""

from __future__ import annotations

import json
import re

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from index.__main__ import main as index_main
from index.embed.fake import FakeEmbedder
from index.search.query import MAX_QUERY_CHARS, clean_query
from index.search.searcher import Searcher
from index.store.reader import load
from ingest.pipeline import build
from tests.helpers import REPO, wait_for
from ui.markdown import escape_markdown

APP = str(REPO / "app.py")
ARABIC_DOC = "عضلات الورك تثني الركبة نحو الجسم."
ARABIC_QUESTION = "ما هي عضلات الورك"
LONG_QUESTION = "how many weeks do vertebral fractures take to heal " * 2000  # 102,000 characters
HOSTILE = "<script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) **bold** :red[red] $x$"


@pytest.fixture
def corpus(tiny_corpus):
    (tiny_corpus / "arabic.txt").write_text(ARABIC_DOC, encoding="utf-8")
    (tiny_corpus / "evil.txt").write_text(
        f"Hostile zebra page {HOSTILE} with a bell\x07 and an escape \x1b[2J sequence.\n\n"
        "Second zebra paragraph, plain.",
        encoding="utf-8",
    )
    return tiny_corpus


@pytest.fixture
def index_dir(corpus, tmp_path):
    build(corpus, tmp_path / "idx", FakeEmbedder())
    return tmp_path / "idx"


@pytest.fixture
def searcher(index_dir):
    embedder = FakeEmbedder()
    return Searcher(load(index_dir, model=embedder.name), embedder)


# Library ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("question", ["", "   ", "\n\t \r", "\x00\x1b\x07", "\u2028"])
def test_empty_questions_are_not_searched(searcher, question):
    answer = searcher.search(question)
    assert (answer.query, answer.answered, answer.hits) == ("", False, ())


def test_long_question_is_cut_at_a_word_and_still_answered(searcher):
    answer = searcher.search(LONG_QUESTION, k=3)
    assert len(answer.query) <= MAX_QUERY_CHARS
    assert LONG_QUESTION.startswith(answer.query + " ")  # a prefix ending at a word boundary
    assert answer.answered and answer.hits[0].passage.location.source == "fractures.txt"


def test_long_word_without_spaces_is_cut_too():
    assert clean_query("x" * 100_000) == "x" * MAX_QUERY_CHARS


def test_control_characters_in_a_question_are_spaces():
    assert clean_query("hip\x00flexors\x1b[2J  knee") == "hip flexors [2J knee"


def test_other_scripts_are_searched(searcher):
    answer = searcher.search(ARABIC_QUESTION, k=2)
    assert answer.hits[0].passage.location.source == "arabic.txt"
    for question in ["髋关节屈肌是什么？", "🦴🤕💊", "Ωμέγα ψ"]:
        answer = searcher.search(question, k=2)
        assert answer.query == question
        assert len(answer.hits) == 2  # dense search always ranks every passage: the loop below runs
        for hit in answer.hits:  # whatever comes back is a well-formed, cited passage
            assert hit.passage.text and hit.answer.text in hit.passage.text


# Command line ---------------------------------------------------------------------------------------------


@pytest.fixture
def query_cli(index_dir, monkeypatch, thread_counts_restored):
    """`python -m index query` with the fake embedder: run(args) -> (exit code, stdout, stderr)."""
    monkeypatch.setenv("KB_EMBEDDER", "fake")

    def run(capsys, *args: str) -> tuple[int, str, str]:
        try:
            code = index_main(["query", "--index", str(index_dir), *args])
        except SystemExit as stopped:  # argparse errors
            code = stopped.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.mark.parametrize("question", ["", "   ", "\x00"])
def test_cli_refuses_an_empty_question(query_cli, capsys, question):
    code, out, err = query_cli(capsys, "hip flexors", question)
    assert code == 2 and out == ""
    assert "question 2 is empty; ask a question in words" in err


def test_cli_refuses_a_question_that_is_not_text(query_cli, capsys):
    """Bytes that are not UTF-8 on a command line reach Python as lone surrogates (issue 23, N5).

    Before: searched as "hip", and `--json` printed the bytes back undecodable.
    """
    not_utf8 = b"\xed\xa0\x80 hip".decode("utf-8", "surrogateescape")  # as sys.argv holds it
    code, out, err = query_cli(capsys, "hip flexors", not_utf8, "--json")
    assert code == 2 and out == ""
    assert "question 2 is not valid text: it holds U+DCED at character 1, a lone UTF-16 surrogate" in err


def test_cli_cuts_a_long_question_and_says_so(query_cli, capsys):
    code, out, err = query_cli(capsys, LONG_QUESTION, "--json")
    assert code == 0
    assert f"note: question 1 has {len(LONG_QUESTION):,} characters" in err
    record = json.loads(out)
    assert len(record["query"]) <= MAX_QUERY_CHARS and record["answered"]


def test_cli_keeps_other_scripts_intact(query_cli, capsys):
    code, out, _ = query_cli(capsys, ARABIC_QUESTION, "🦴🤕💊", "--json")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["query"] for r in records] == [ARABIC_QUESTION, "🦴🤕💊"]
    assert records[0]["hits"][0]["source"] == "arabic.txt"


def test_cli_prints_no_control_characters_from_documents(query_cli, capsys):
    code, out, _ = query_cli(capsys, "hostile zebra page bell escape sequence")
    assert code == 0 and "evil.txt" in out and "escape" in out
    assert "\x1b" not in out and "\x07" not in out


def test_cli_file_splits_on_newline_only(query_cli, capsys, tmp_path):
    """U+2028, NEL and other Unicode line breaks stay inside a question; only \\n ends one."""
    questions = tmp_path / "questions.txt"
    separators = "\u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e"
    questions.write_text(f"hip flexors{separators}knee lift\r\nspinal fusion\n", encoding="utf-8")
    code, out, _ = query_cli(capsys, "--file", str(questions), "--json")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["query"] for r in records] == ["hip flexors knee lift", "spinal fusion"]


def test_cli_answers_ten_thousand_questions_from_a_file_in_order(query_cli, capsys, tmp_path):
    """Issue 23's "not re-tried" list: one model and index for all, one JSON line per question, in order
    (about 6 s with the fake embedder on 2 cores; the questions are held, the answers printed as they come)."""
    questions = [f"{('hip flexors', 'spinal fusion', 'vertebral fractures')[n % 3]} {n}" for n in range(10_000)]
    (tmp_path / "many.txt").write_text("\n".join(questions) + "\n", encoding="utf-8")
    code, out, err = query_cli(capsys, "--file", str(tmp_path / "many.txt"), "--json", "-k", "1")
    assert code == 0 and err == ""
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["query"] for r in records] == questions
    assert all(len(r["hits"]) == 1 for r in records)


# The app -----------------------------------------------------------------------------------------------------


@pytest.fixture
def app(index_dir, corpus, monkeypatch, thread_counts_restored):
    monkeypatch.setenv("KB_EMBEDDER", "fake")
    monkeypatch.setenv("KB_CORPUS", str(corpus))
    monkeypatch.setenv("KB_INDEX", str(index_dir))
    st.cache_resource.clear()
    yield lambda: AppTest.from_file(APP, default_timeout=30)
    st.cache_resource.clear()


def shown(at: AppTest) -> str:
    """Every piece of Markdown the page sends to the browser (elements that render Markdown)."""
    kinds = (at.markdown, at.caption, at.info, at.warning, at.error, at.success, at.toast)
    return "\n".join(str(element.value) for kind in kinds for element in kind)


def assert_inert(text: str, *hostile: str) -> None:
    """None of `hostile` occurs in `text` other than backslash-escaped."""
    for raw in hostile:
        assert not re.search(r"(?<!\\)" + re.escape(raw), text), f"{raw!r} reaches the browser unescaped"


def test_a_pasted_question_over_the_limit_is_cut_in_the_box_with_a_note(app):
    at = app().run()
    at.text_input(key="query").input(LONG_QUESTION).run()
    assert not at.exception
    assert len(at.text_input(key="query").value) <= MAX_QUERY_CHARS
    assert "cut at the last whole word" in at.info[0].value


@pytest.mark.parametrize("question", ["   ", "\t\n"])
def test_blank_question_shows_nothing(app, question):
    at = app().run()
    at.text_input(key="query").input(question).run()
    assert not at.exception and not at.warning and not at.info
    assert not [m for m in at.markdown if m.value.startswith("**\\[1\\]**")]


def test_control_characters_only_ask_for_words(app):
    at = app().run()
    at.text_input(key="query").input("\x01\x02\x1b").run()
    assert not at.exception
    assert "Ask a question in words" in at.info[0].value


def test_over_long_question_in_the_link_is_cut_and_answered(app):
    at = app()
    at.query_params["q"] = LONG_QUESTION
    at.run()
    assert not at.exception
    box = at.text_input(key="query").value
    assert len(box) <= MAX_QUERY_CHARS and LONG_QUESTION.startswith(box + " ")  # cut at a word
    assert any(m.value.startswith("**\\[1\\]**") and "fractures" in m.value for m in at.markdown)


def test_question_in_another_script_is_answered(app):
    at = app().run()
    at.text_input(key="query").input(ARABIC_QUESTION).run()
    assert not at.exception
    assert escape_markdown("arabic.txt, line 1") in shown(at)


def test_hostile_question_is_never_rendered_as_markdown(app):
    at = app().run()
    at.text_input(key="query").input(HOSTILE).run()
    assert not at.exception
    assert_inert(shown(at), "<script>", "<img", "](javascript:", "**bold**", ":red[red]")


def test_hostile_document_text_is_escaped_in_the_answer_the_cards_and_the_document(app):
    at = app().run()
    at.text_input(key="query").input("hostile zebra page bell escape sequence").run()
    text = shown(at)
    assert escape_markdown(HOSTILE) in text  # in the card (highlighted or not)
    assert_inert(text, "<script>", "<img", "](javascript:", "**bold**", ":red[red]", "\x1b", "\x07")
    document = app()
    document.query_params["source"] = "evil.txt"
    document.run().switch_page("app_pages/document.py").run()
    text = shown(document)
    assert escape_markdown(HOSTILE) in text  # the whole document
    assert_inert(text, "<script>", "<img", "](javascript:", "**bold**", ":red[red]", "\x1b", "\x07")


def test_hostile_file_name_is_escaped_in_the_citation(app, corpus, index_dir):
    (corpus / "[x](javascript:alert(1)) <b>.md").write_text("Quokka habitats are islands.", encoding="utf-8")
    build(corpus, index_dir, FakeEmbedder())
    at = app().run()
    at.text_input(key="query").input("quokka habitats islands").run()
    text = shown(at)
    assert escape_markdown("[x](javascript:alert(1)) <b>.md, line 1") in text
    assert_inert(text, "](javascript:", "<b>")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("<img src=x onerror=alert(1)>/.txt", "Not added"),  # no name left: the message quotes the raw one
        ("[click](javascript:alert(1)) <img src=x>.txt", "Added uploads"),
    ],
)
def test_hostile_upload_names_are_escaped_in_messages(app, corpus, name, expected):
    at = app().run().switch_page("app_pages/documents.py").run()
    at.get("file_uploader")[0].set_value((name, b"Wombat burrows are cube shaped.", "text/plain")).run()
    next(b for b in at.button if b.label == "Add to the knowledge base").click().run()
    assert not at.exception
    # "Added" is said once the build has read the file.
    messages = [t.value for t in at.toast] or wait_for(
        lambda: [t.value for t in at.run().toast], timeout=30, interval=0.1, what="a message about the upload"
    )
    assert any(m.startswith(expected) for m in messages), messages
    assert_inert("\n".join(messages), "<img", "](javascript:")
    assert all(p.is_relative_to(corpus) for p in corpus.rglob("*"))


# The real model -------------------------------------------------------------------------------------------------


@pytest.mark.model
def test_real_model_on_huge_and_non_latin_questions(tiny_corpus, tmp_path):
    """The bundled model: a 100,000-character question is cut and searched; questions in scripts
    the English model cannot read come back not answered (best similarity ~0.1 measured), without error."""
    from index.embed.registry import BundledModel

    embedder = BundledModel()
    build(tiny_corpus, tmp_path / "idx", embedder)
    searcher = Searcher(load(tmp_path / "idx", model=embedder.name), embedder)
    on_topic = "How long do vertebral fractures take to heal?"
    assert searcher.search(on_topic).answered

    huge = searcher.search((on_topic + " ") * 2300, k=3)
    assert len(huge.query) <= MAX_QUERY_CHARS and len(huge.hits) == 3
    assert all(h.answer.text in h.passage.text for h in huge.hits)

    for question in ["髋屈肌是什么？", "ما هي عضلات الورك؟", "🦴🤕💊"]:
        answer = searcher.search(question, k=3)
        assert answer.query == question and len(answer.hits) == 3
        assert not answer.answered, (question, [h.similarity for h in answer.hits])
