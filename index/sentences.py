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
# Longer than any abbreviation, initial or list number below: a longer word is none of them.
_SHORT_WORD = 8
_ABBREVIATIONS = frozenset(
    "dr mr mrs ms prof st vs etc e.g i.e approx fig no vol al jr sr inc ltd co dept est cf ca"
    " jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k a.m p.m ph.d".split()
)


def _is_false_end(text: str, stop: int) -> bool:
    """True when the period at text[stop-1] belongs to an abbreviation, initial or list number.

    Looks back only over the word before `stop` (at most `_SHORT_WORD`
    characters of it), so splitting stays linear in the text's length.
    """
    if text[stop - 1] != ".":
        return False
    end = stop
    while end > 0 and text[end - 1] == ".":
        end -= 1
    begin = end
    while begin > 0 and not text[begin - 1].isspace():
        if end - begin >= _SHORT_WORD:
            return False
        begin -= 1
    word = text[begin:end].lower()
    if word in _ABBREVIATIONS:
        return True
    # "J. Smith", "3. Hug it out" (list numbers), but not "in 1998." closing a sentence.
    return len(word) == 1 or (word.isdigit() and len(word) <= 2 and _starts_line(text, begin))


def _starts_line(text: str, pos: int) -> bool:
    """Whether only spaces and tabs stand between the previous line break (or the start) and `pos`."""
    while pos > 0 and text[pos - 1] in " \t":
        pos -= 1
    return pos == 0 or text[pos - 1] == "\n"


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
        if match.group() != "\n":
            nxt = _next_visible(text, match.end(), end)
            if nxt is not None and not (nxt.isupper() or nxt.isdigit() or nxt in "\"'“‘([¿¡^•-–—*"):
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
