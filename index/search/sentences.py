"""Sentence boundaries as character spans.

Both ingest (to cut passages at sentence ends) and search (to pick the
answering sentence) need the same notion of a sentence, and both need exact
offsets, so this returns spans rather than strings. It is a small rule-based
splitter: the statistical ones need model data we cannot download (NLTK
punkt) or report unreliable offsets (pysbd's char spans). The rules cover
what prose in a knowledge base needs: terminal punctuation followed by space
and a capital/digit/quote, line breaks, and common abbreviations, initials
and list numbers that must not end a sentence.
"""

from __future__ import annotations

import re

# A sentence ends after . ! ? … (plus closing quotes/brackets and citation
# markers like "[25]"), when whitespace follows; or at any line break.
_END = re.compile(r"""[.!?…]+["'”’)\]]*(?:\[\d+\])*(?=\s)|\n""")
_WORD_BEFORE = re.compile(r"(\S+)$")
# Dotted initials ("I.V.", "e.g" is listed): an abbreviation, not a sentence end.
_DOTTED = re.compile(r"(?:[a-z]\.)+[a-z]")
_LONGEST_WORD = 64  # a longer word is no abbreviation, initial or list number either way
_ABBREVIATIONS = frozenset(
    "dr mr mrs ms prof st vs etc e.g i.e approx fig no vol al jr sr inc ltd co dept est cf ca"
    " jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k a.m p.m ph.d".split()
)


def _is_false_end(text: str, stop: int) -> bool:
    """True when the period at text[stop-1] belongs to an abbreviation, initial or list number."""
    if text[stop - 1] != ".":
        return False
    # A window, not the whole text before: searching from 0 made splitting quadratic.
    match = _WORD_BEFORE.search(text, max(0, stop - _LONGEST_WORD), stop)
    if match is None:
        return False
    word = match.group(1).rstrip(".").lower()
    if word in _ABBREVIATIONS or _DOTTED.fullmatch(word):
        return True
    # "J. Smith", "3. Hug it out" (list numbers), but not "in 1998." closing a sentence.
    return len(word) == 1 or (word.isdigit() and len(word) <= 2 and match.start() == _line_start(text, stop))


def _line_start(text: str, pos: int) -> int:
    start = text.rfind("\n", 0, pos) + 1
    while start < pos and text[start] in " \t":
        start += 1
    return start


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Split `text[start:end]` into sentences.

    Args:
        text: The whole text (offsets are kept relative to it).
        start: Where to begin.
        end: Where to stop (default: end of text).

    Returns:
        Non-overlapping `(start, end)` spans in order, each stripped of
        surrounding whitespace and non-empty. Every non-space character in the
        range lies in exactly one span.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    cursor = start
    for match in _END.finditer(text, start, end):
        if match.group() == "\n":
            if _is_wrapped_line(text, match.start(), end):
                continue
            stop = match.start()
        else:
            stop = match.end()
            if _is_false_end(text, stop):
                continue
        # Only a capital, digit, quote or bracket opens a new sentence;
        # "e.g. this" or "approx. five" stay together.
        nxt = _next_visible(text, match.end(), end)
        if (
            match.group() != "\n"
            and nxt is not None
            and not (nxt.isupper() or nxt.isdigit() or nxt in "\"'“‘([¿¡^•-–—*")
        ):
            continue
        _append_stripped(text, cursor, stop, spans)
        cursor = match.end()
    _append_stripped(text, cursor, end, spans)
    return spans


def _is_wrapped_line(text: str, newline: int, end: int) -> bool:
    """A single line break inside a hard-wrapped sentence: a word before it, lowercase after."""
    after = newline + 1
    while after < end and text[after] in " \t":
        after += 1
    if after >= end or not text[after].islower():
        return False
    before = newline
    while before > 0 and text[before - 1] in " \t\r":
        before -= 1
    return before > 0 and (text[before - 1].isalnum() or text[before - 1] in ",;:-")


def _next_visible(text: str, pos: int, end: int) -> str | None:
    while pos < end and text[pos].isspace():
        pos += 1
    return text[pos] if pos < end else None


def _append_stripped(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))


_MIN_SENTENCE_WORDS = 4


def _join_fragments(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Attach fragments ("Spondylolisthesis.", "3.") to the sentence after them.

    A heading-like fragment cannot answer anything alone, but with the
    sentence it introduces it is the natural thing to highlight.
    """
    joined: list[tuple[int, int]] = []
    pending: int | None = None
    last = spans[-1][1] if spans else 0
    for start, end in spans:
        if pending is not None:
            start, pending = pending, None
        if len(text[start:end].split()) < _MIN_SENTENCE_WORDS and end != last:
            pending = start
            continue
        joined.append((start, end))  # the passage's last words stay a candidate, however short
    return joined


def answer_candidates(text: str) -> list[tuple[int, int]]:
    """The spans of `text` that can be highlighted as its answer: sentences, fragments joined.

    Ingest pools a vector for each from the passage's forward pass, search
    scores and highlights them; both call this, so row j of a passage's
    sentence vectors is span j here.
    """
    return _join_fragments(text, split_sentences(text)) or [(0, len(text))]
