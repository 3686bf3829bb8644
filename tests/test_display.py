"""Document text rendered for the browser is inert: no markup of its own survives."""

from __future__ import annotations

import re
import string

import pytest

from index.display import escape_markdown, highlight_markdown


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
