"""Text for the browser is inert Markdown: no markup of its own survives, only our highlight and citations."""

from __future__ import annotations

import re
import string

import pytest

from index.records import Hit, Location, Passage, Span
from tests.helpers import directives_within_lines
from ui.markdown import (
    directive_markdown,
    escape_markdown,
    highlight_markdown,
    hit_heading,
    hit_highlight,
    passage_markdown,
    quote_markdown,
)


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "[click](javascript:alert(1))",
        "**bold** _it_ `code` ~strike~",
        "$x^2$ and :red[red] and :smile:",
        "# heading\n- item\n1. item",
        "a | table | row",
    ],
)
def test_every_markdown_character_is_escaped(text):
    escaped = escape_markdown(text)
    i = 0
    while i < len(escaped):
        if escaped[i] == "\\":
            assert escaped[i + 1] in string.punctuation
            i += 2
            continue
        assert escaped[i] not in string.punctuation, f"unescaped {escaped[i]!r} in {escaped!r}"
        i += 1
    unescaped = re.sub(r"\\(.)", r"\1", escaped.replace("  \n", "\n"))
    assert unescaped == text


def test_control_characters_are_dropped_and_newlines_kept():
    assert escape_markdown("a\x1b[31mb\nc") == "a \\[31mb  \nc"


def test_highlight_wraps_only_the_span():
    text = "First sentence. Second [one]."
    marked = highlight_markdown(text, 16, len(text))
    assert marked == "First sentence\\. :orange-background[Second \\[one\\]\\.]"


def hit_in(text: str, start: int, answer: tuple[int, int], locations: int = 1) -> Hit:
    places = tuple(Location(f"d{i}.txt", f"d{i}.txt", start, start + len(text), 1 + i) for i in range(locations))
    return Hit(Passage("id", text, places), 1, 1.0, 0.5, Span(*answer, text[answer[0] - start : answer[1] - start]))


def test_hit_heading_cites_every_location_once_with_its_span_escaped():
    assert hit_heading(hit_in("Some text.", 0, (0, 10))) == "**\\[1\\]** d0\\.txt\\, line 1 · characters 0–10"
    heading = hit_heading(hit_in("Some text.", 0, (0, 10), locations=3))
    assert heading == (
        "**\\[1\\]** d0\\.txt\\, line 1 · characters 0–10  \n:gray[also d1\\.txt\\, line 2\\; d2\\.txt\\, line 3]"
    )


def test_a_quote_is_the_answer_sentence_exactly_with_a_link_to_its_card():
    hit = hit_in("First [one]. Second *two*.", 0, (13, 26))
    assert quote_markdown(hit) == "“Second \\*two\\*\\.” [\\[1\\]](#source-1)"


def test_highlights_never_span_a_paragraph_break():
    text = "Heading\n\nBody sentence. Answer here."
    assert highlight_markdown(text, 0, len(text)) == (
        ":orange-background[Heading]  \n  \n:orange-background[Body sentence\\. Answer here\\.]"
    )
    marked = passage_markdown(text, (24, 36))
    assert marked == (
        ":blue-background[Heading]  \n  \n:blue-background[Body sentence\\.] :orange-background[Answer here\\.]"
    )


def test_the_answer_is_highlighted_at_its_place_in_the_passage():
    text = "First sentence. Second one."
    hit = hit_in(text, 100, (116, 127))  # the passage starts at offset 100 of its document
    assert hit.answer_within(100) == (16, 27)
    assert hit_highlight(hit) == "First sentence\\. :orange-background[Second one\\.]"
    assert directive_markdown("Before *it*.", "gray") == ":gray[Before \\*it\\*\\.]"


# A directive cannot span a blank line, so a highlight across lines is one directive per line ------

TITLED = "Okapi\n\nOkapi are relatives of giraffes that live in the rainforest."


def test_a_highlight_across_a_blank_line_is_one_directive_per_line():
    """The titled JSONL record: its answer sentence begins with the title, two lines above."""
    marked = highlight_markdown(TITLED, 0, len(TITLED))
    assert marked == (
        ":orange-background[Okapi]  \n  \n:orange-background[Okapi are relatives of giraffes that live in the rainforest\\.]"
    )
    assert directives_within_lines(marked)


@pytest.mark.parametrize("text", [TITLED, "# Hip flexors\n\nThe hip flexors lift the knee.\nA wrapped\nline."])
def test_highlights_and_greyed_context_never_span_lines(text):
    for start in range(len(text)):
        for end in range(start, len(text) + 1, 3):
            assert directives_within_lines(highlight_markdown(text, start, end)), (start, end)
    hit = hit_in(text, 0, (0, len(text)))
    assert directives_within_lines(directive_markdown(text, "gray"))
    assert directives_within_lines(hit_highlight(hit))


def test_a_titled_record_is_highlighted_from_index_to_markdown(tmp_path, fake_embedder):
    import json

    from index.search.searcher import Searcher
    from index.store.reader import load
    from ingest.pipeline import build

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    record = {"_id": "okapi-1", "title": "Okapi", "text": TITLED.split("\n\n")[1]}
    (corpus / "animals.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    build(corpus, tmp_path / "idx", fake_embedder)
    [hit] = Searcher(load(tmp_path / "idx"), fake_embedder).search("okapi relatives of giraffes", k=1).hits
    assert hit.passage.location.cite() == "animals.jsonl [okapi-1], line 1"
    assert hit.answer.text == TITLED  # the title joins the sentence it introduces
    marked = hit_highlight(hit)
    assert directives_within_lines(marked) and ":orange-background[Okapi are relatives" in marked


def test_hit_heading_shows_the_section_the_passage_sits_under_escaped():
    from dataclasses import replace

    hit = hit_in("Some text.", 0, (0, 10))
    located = replace(hit.passage.locations[0], section="Zika *virus* › Symptoms")
    hit = replace(hit, passage=replace(hit.passage, locations=(located,)))
    assert hit_heading(hit) == "**\\[1\\]** d0\\.txt\\, line 1 · characters 0–10  \n:gray[Zika \\*virus\\* › Symptoms]"


def test_a_documents_headings_are_shown_bold_and_everything_else_escaped():
    from ui.markdown import laid_out_markdown

    text = "Zika *virus*\n\nMost people have no symptoms.\n\nTreatment\n\nRest."
    headings = ((100, 112, 1), (100 + text.index("Treatment"), 100 + text.index("Treatment") + 9, 2))
    shown = laid_out_markdown(text, 100, headings)
    assert shown.split("  \n") == [
        "**Zika \\*virus\\***",
        "",
        "Most people have no symptoms\\.",
        "",
        "**Treatment**",
        "",
        "Rest\\.",
    ]
    assert laid_out_markdown(text[14:], 114, headings).startswith("Most people")  # a heading outside is not shown
