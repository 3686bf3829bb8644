"""Document text as inert Markdown for the browser, with only our own highlights and citation links as markup.

Document text is data, never markup. It goes through `escape_markdown`,
which backslash-escapes every ASCII punctuation character (CommonMark allows
that for all of them), so `<script>`, `[x](javascript:…)`, `**bold**`,
`$math$`, `:emoji:` shortcodes and Streamlit's `:color[...]` directives all
show literally. The answer sentence is highlighted by wrapping the escaped
sentence in a directive we add ourselves, line by line (a directive cannot
span a paragraph break), and the only links are our own citation numbers
pointing at anchors on the same page. Nothing here is rendered with
`unsafe_allow_html`.
"""

from __future__ import annotations

import string

from index.records import Hit, Location

_ESCAPES = {ord(ch): "\\" + ch for ch in string.punctuation}
ANSWER_COLOUR = "orange"
PASSAGE_COLOUR = "blue"


def escape_markdown(text: str) -> str:
    """Make `text` display literally in Markdown (line breaks kept, control characters dropped)."""
    cleaned = "".join(ch if ch.isprintable() or ch == "\n" else " " for ch in text)
    return "  \n".join(line.translate(_ESCAPES) for line in cleaned.split("\n"))


def laid_out_markdown(text: str, offset: int, headings: tuple[tuple[int, int, int], ...]) -> str:
    """`text` (which starts at `offset` of its document) as inert Markdown, its headings in bold.

    Only whole lines that are exactly a heading are emboldened; everything
    else, the heading's words included, is escaped as `escape_markdown` does.
    """
    spans = {
        (start - offset, end - offset) for start, end, _ in headings if offset <= start and end <= offset + len(text)
    }
    lines, at = [], 0
    for line in text.split("\n"):
        escaped = escape_markdown(line)
        lines.append(f"**{escaped}**" if (at, at + len(line)) in spans and line.strip() else escaped)
        at += len(line) + 1
    return "  \n".join(lines)


def directive_markdown(text: str, directive: str) -> str:
    """`text` as inert Markdown inside Streamlit's `:directive[...]`, one directive per line.

    A directive cannot span a blank line: Markdown ends the paragraph there,
    and the directive shows literally as `[first line ... last line]`. An
    answer that starts with a heading or a record's title, two lines above
    its sentence, is such a span. Blank lines stay plain; spaces around a
    line's words stay outside its directive, so neighbouring words keep them.
    """
    lines = []
    for line in text.split("\n"):
        body = line.strip()
        if not body:
            lines.append("")
            continue
        lead, trail = line[: len(line) - len(line.lstrip())], line[len(line.rstrip()) :]
        lines.append(f"{lead}:{directive}[{escape_markdown(body)}]{trail}")  # spaces need no escape
    return "  \n".join(lines)


def marked(text: str, colour: str) -> str:
    """`text` as inert Markdown on a coloured background, one directive per line."""
    return directive_markdown(text, f"{colour}-background")


def highlight_markdown(text: str, start: int, end: int, colour: str = ANSWER_COLOUR) -> str:
    """`text` as inert Markdown with `text[start:end]` on a coloured background."""
    before, middle, after = text[:start], text[start:end], text[end:]
    return escape_markdown(before) + marked(middle, colour) + escape_markdown(after)


def passage_markdown(text: str, sentence: tuple[int, int]) -> str:
    """A passage shown inside its document: all of it tinted, its answer sentence highlighted."""
    start, end = sentence
    if not 0 <= start < end <= len(text):
        return marked(text, PASSAGE_COLOUR)
    parts = [(text[:start], PASSAGE_COLOUR), (text[start:end], ANSWER_COLOUR), (text[end:], PASSAGE_COLOUR)]
    return "".join(marked(part, colour) for part, colour in parts if part)


def anchor(number: int) -> str:
    """The id of the card a citation number jumps to."""
    return f"source-{number}"


def citation_link(number: int) -> str:
    """An inline citation "[n]" that jumps to card n on the same page."""
    return f"[\\[{number}\\]](#{anchor(number)})"


def quote_markdown(hit: Hit) -> str:
    """The answer sentence of `hit` quoted exactly, followed by its citation number."""
    sentence = " ".join(hit.answer.text.split())  # a quote on one line; the words are the document's
    return f"“{escape_markdown(sentence)}” {citation_link(hit.rank)}"


def citation(location: Location) -> str:
    """ "document, line n · characters a–b" (page instead of line for PDFs), unescaped."""
    return f"{location.cite()} · characters {location.start:,}–{location.end:,}"


def hit_heading(hit: Hit) -> str:
    """ "**[rank]** citation with its character span", its section ("Zika virus › Symptoms") and the
    other places it occurs, all escaped."""
    also = hit.passage.also_cited()
    section = hit.passage.section
    return (
        f"**\\[{hit.rank}\\]** {escape_markdown(citation(hit.passage.location))}"
        + (f"  \n:gray[{escape_markdown(section)}]" if section else "")
        + (f"  \n:gray[also {escape_markdown(also)}]" if also else "")
    )


def hit_highlight(hit: Hit) -> str:
    """A hit's passage with its answer sentence highlighted, as inert Markdown."""
    return highlight_markdown(hit.passage.text, *hit.answer_within(hit.passage.location.start))
