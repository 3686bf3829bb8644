"""Rendering answers for people: plain text for the terminal, inert Markdown for the browser.

Document text is data, never markup. In the browser it goes through
`escape_markdown`, which backslash-escapes every ASCII punctuation character
(CommonMark allows that for all of them), so `<script>`, `[x](javascript:…)`,
`**bold**`, `$math$`, `:emoji:` shortcodes and Streamlit's `:color[...]`
directives all show literally. The answer sentence is highlighted by wrapping
the escaped sentence in a directive we add ourselves.
"""

from __future__ import annotations

import string

from index.records import Answer, Hit
from index.search import RetrievalMode

NO_ANSWER = "No passage in the collection answers this."
_ESCAPES = {ord(ch): "\\" + ch for ch in string.punctuation}


def escape_markdown(text: str) -> str:
    """Make `text` display literally in Markdown (line breaks kept, control characters dropped)."""
    cleaned = "".join(ch if ch.isprintable() or ch == "\n" else " " for ch in text)
    return "  \n".join(line.translate(_ESCAPES) for line in cleaned.split("\n"))


def highlight_markdown(text: str, start: int, end: int, colour: str = "orange") -> str:
    """`text` as inert Markdown with `text[start:end]` on a coloured background."""
    before, middle, after = text[:start], text[start:end], text[end:]
    marked = f":{colour}-background[{escape_markdown(middle)}]" if middle.strip() else escape_markdown(middle)
    return escape_markdown(before) + marked + escape_markdown(after)


def hit_highlight(hit: Hit) -> str:
    """A hit's passage with its answer sentence highlighted, as inert Markdown."""
    offset = hit.passage.location.start
    return highlight_markdown(hit.passage.text, hit.answer.start - offset, hit.answer.end - offset)


def format_answer(answer: Answer, explain: bool = False) -> str:
    """Readable terminal rendering: the question, then numbered citations with their answer sentence."""
    lines = [f"Q: {_single_line(answer.query)}"]
    if not answer.answered:
        lines.append(f"   {NO_ANSWER}" + (" Nearest passages, weak matches:" if answer.hits else ""))
    for hit in answer.hits:
        locations = hit.passage.locations
        also = f" (also {'; '.join(l.cite() for l in locations[1:])})" if len(locations) > 1 else ""
        cite = _single_line(locations[0].cite() + also)  # file names may hold control characters too
        lines.append(f"[{hit.rank}] {cite}  score {hit.score:.4f}, similarity {hit.similarity:.2f}")
        if explain:
            lines.append(
                f"    ranks: {RetrievalMode.DENSE.label} {_rank(hit.dense_rank)}, "
                f"{RetrievalMode.KEYWORD.label} {_rank(hit.keyword_rank)}, {RetrievalMode.HYBRID.label} {hit.rank}"
            )
        lines.append(f"    » {_single_line(hit.answer.text)}")
    return "\n".join(lines)


def _rank(rank: int | None) -> str:
    return "-" if rank is None else str(rank)


def _single_line(text: str) -> str:
    return " ".join(_printable(text).split())


def _printable(text: str) -> str:
    """`text` without control characters: a document's ESC sequences must not drive the terminal."""
    return "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text)
