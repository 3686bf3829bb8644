"""Document text as inert Markdown for the browser, with only our own highlight as markup.

Document text is data, never markup. It goes through `escape_markdown`,
which backslash-escapes every ASCII punctuation character (CommonMark allows
that for all of them), so `<script>`, `[x](javascript:…)`, `**bold**`,
`$math$`, `:emoji:` shortcodes and Streamlit's `:color[...]` directives all
show literally. The answer sentence is highlighted by wrapping the escaped
sentence in a directive we add ourselves. Nothing here is rendered with
`unsafe_allow_html`.
"""

from __future__ import annotations

import string

from index.records import Hit, Location

_ESCAPES = {ord(ch): "\\" + ch for ch in string.punctuation}


def escape_markdown(text: str) -> str:
    """Make `text` display literally in Markdown (line breaks kept, control characters dropped)."""
    cleaned = "".join(ch if ch.isprintable() or ch == "\n" else " " for ch in text)
    return "  \n".join(line.translate(_ESCAPES) for line in cleaned.split("\n"))


def directive_markdown(text: str, directive: str) -> str:
    """`text` as inert Markdown inside Streamlit's `:directive[...]`, one directive per line.

    A directive cannot span a blank line: Markdown ends the paragraph there,
    and the directive shows literally as `[first line ... last line]`. An
    answer that starts with a heading or a record's title, two lines above
    its sentence, is such a span.
    """
    return "  \n".join(
        f":{directive}[{escape_markdown(line)}]" if line.strip() else escape_markdown(line) for line in text.split("\n")
    )


def highlight_markdown(text: str, start: int, end: int, colour: str = "orange") -> str:
    """`text` as inert Markdown with `text[start:end]` on a coloured background."""
    before, middle, after = text[:start], text[start:end], text[end:]
    return escape_markdown(before) + directive_markdown(middle, f"{colour}-background") + escape_markdown(after)


def hit_heading(hit: Hit) -> str:
    """ "**rank.** citation · also other citations", the citations escaped."""
    also = hit.passage.also_cited()
    return f"**{hit.rank}.** {escape_markdown(hit.passage.location.cite())}" + (
        f" · also {escape_markdown(also)}" if also else ""
    )


def hit_highlight(hit: Hit) -> str:
    """A hit's passage with its answer sentence highlighted, as inert Markdown."""
    return highlight_markdown(hit.passage.text, *hit.answer_within(hit.passage.location.start))


def context_markdown(hit: Hit, location: Location, text: str, is_hit: bool) -> str:
    """A passage shown around a hit: the hit's own with its answer highlighted, the others greyed."""
    if is_hit:
        return highlight_markdown(text, *hit.answer_within(location.start))
    return directive_markdown(text, "gray")
