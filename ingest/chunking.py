"""Documents into passages with exact character spans.

A passage is a paragraph when the paragraph fits the model's window; longer
paragraphs are cut at sentence ends into balanced pieces, and a single
sentence longer than the window is cut between words. The window is
`Settings.max_tokens` word pieces and `Settings.max_chars` characters: a run
of letters the tokenizer counts as one token is still cut. Short paragraphs
(headings, list stubs) are merged with the paragraph that follows. Every
passage records where it came from, with `document.text[start:end] == text`,
so citations and highlights are exact. Text without any word in it (a lone
`×`) is not a passage.

A document whose reader knows its structure (`Document.blocks`) is cut by
section: a passage never crosses a heading, the heading is not part of its
text but its `section` path ("Zika virus › Symptoms"), the context the
passage is embedded and keyword-indexed with, and a list stays with the line
that introduces it (one ending in ":"), a table's rows together.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from index.records import Location, Settings, indexed_text
from index.search.sentences import split_sentences
from ingest.loaders import Document
from ingest.loaders.document import Block, BlockKind

_WORD = re.compile(r"[^\W_]")  # a letter or digit: "×" or "---" alone is not a passage
_WHITESPACE_RUN = re.compile(r"\S+")
# Special tokens ([CLS], [SEP]) that every encoded passage carries.
_SPECIAL_TOKENS = 2
# Between the headings of a section path, as the card shows it.
SECTION_SEPARATOR = " › "


@dataclass(frozen=True)
class Chunk:
    """A passage before de-duplication: its text and the one place it came from (with its heading path)."""

    text: str
    location: Location

    @property
    def indexed_text(self) -> str:
        """Its text as the model and BM25 will read it: after its heading path."""
        return indexed_text(self.text, self.location.section)


def chunk_document(doc: Document, count_tokens: Callable[[str], int], settings: Settings) -> list[Chunk]:
    """Split one document into passages.

    Args:
        doc: The document with its extracted text.
        count_tokens: The embedder's token counter (special tokens included).
        settings: `max_tokens` bounds every passage; `min_tokens` triggers merging.

    Returns:
        Chunks in document order, non-overlapping, each within `max_tokens`.
    """
    whole = _Window(settings.max_tokens - _SPECIAL_TOKENS, settings.max_chars or len(doc.text) + 1)
    sections = _sections(doc) if doc.blocks else [("", _paragraphs(doc.text))]
    chunks = []
    line, counted_to = 1, 0  # pieces are in order: count line breaks once, in C
    for path, units in sections:
        # The model reads the heading path before the passage: it takes its share of the window.
        section = _fitting_section(path, count_tokens)
        window = _Window(whole.tokens_allowed - _context_tokens(section, count_tokens), whole.chars_allowed)
        pieces: list[tuple[int, int, int]] = []  # (start, end, tokens) of each passage-to-be
        for unit in units:
            sentences = [(s, e, window.tokens(doc.text, s, e, count_tokens)) for s, e in unit]
            sentences = [piece for sent in sentences for piece in _fit(doc.text, sent, window, count_tokens)]
            pieces.extend(_pack(sentences, window))
        pieces = [p for p in pieces if _WORD.search(doc.text, p[0], p[1])]
        for start, end, _ in _merge_short(doc.text, pieces, settings.min_tokens, window, count_tokens):
            line += doc.text.count("\n", counted_to, start)
            counted_to = start
            location = Location(doc.doc_id, doc.source, start, end, line, doc.page_at(start), section)
            chunks.append(Chunk(doc.text[start:end], location))
    return chunks


def _sections(doc: Document) -> list[tuple[str, list[list[tuple[int, int]]]]]:
    """The document's sections in order: each heading path with its units' sentence spans.

    A unit is what should stay in one passage when it fits: a paragraph; a
    line ending in ":" with the list items after it; a run of list items; a
    table's rows. Headings are not in any unit: they name the section.
    """
    sections: list[tuple[str, list[list[tuple[int, int]]]]] = []
    path: list[tuple[int, str]] = [(0, doc.title)] if doc.title else []
    units: list[list[tuple[int, int]]] = []
    for group in _units(doc):
        first = group[0]
        if first.kind is BlockKind.HEADING:
            if units:
                sections.append((_path_text(path), units))
                units = []
            while path and path[-1][0] >= max(first.level, 1):
                path.pop()
            path.append((max(first.level, 1), " ".join(doc.text[first.start : first.end].split())))
            continue
        units.append(split_sentences(doc.text, first.start, group[-1].end))
    if units:
        sections.append((_path_text(path), units))
    return sections


# At most this many word pieces of a passage's window go to its heading path.
_MAX_SECTION_TOKENS = 48


def _context_tokens(section: str, count_tokens: Callable[[str], int]) -> int:
    return count_tokens(section) - _SPECIAL_TOKENS if section else 0


def _fitting_section(path: str, count_tokens: Callable[[str], int]) -> str:
    """The heading path, shortened from the top (then cut) when it would take too much of the window."""
    names = path.split(SECTION_SEPARATOR) if path else []
    while len(names) > 1 and _context_tokens(SECTION_SEPARATOR.join(names), count_tokens) > _MAX_SECTION_TOKENS:
        names = names[1:]
    section = SECTION_SEPARATOR.join(names)
    while section and _context_tokens(section, count_tokens) > _MAX_SECTION_TOKENS:
        section = section[: len(section) * 3 // 4].rsplit(" ", 1)[0] if " " in section else section[:100]
    return section


def _units(doc: Document) -> list[list[Block]]:
    """Blocks grouped into units (see `_sections`); a heading is a group of its own."""
    groups: list[list[Block]] = []
    for block in doc.blocks:
        previous = groups[-1][-1] if groups else None
        joins = previous is not None and (
            (block.kind is BlockKind.ITEM and previous.kind is BlockKind.ITEM)
            or (block.kind is BlockKind.ROW and previous.kind is BlockKind.ROW)
            or (
                block.kind is BlockKind.ITEM
                and previous.kind is BlockKind.PARAGRAPH
                and doc.text[previous.start : previous.end].rstrip().endswith(":")
            )
        )
        if joins:
            groups[-1].append(block)
        else:
            groups.append([block])
    return groups


def _path_text(path: list[tuple[int, str]]) -> str:
    """The heading path as one line, a heading that repeats its parent (the title as H1) said once."""
    names: list[str] = []
    for _, name in path:
        if name and (not names or names[-1].casefold() != name.casefold()):
            names.append(name)
    return SECTION_SEPARATOR.join(names)


def _paragraphs(text: str) -> list[list[tuple[int, int]]]:
    """Group sentence spans into paragraphs: a line break between two sentences ends a paragraph."""
    paragraphs: list[list[tuple[int, int]]] = []
    previous_end = None
    for span in split_sentences(text):
        if previous_end is None or "\n" in text[previous_end : span[0]]:
            paragraphs.append([])
        paragraphs[-1].append(span)
        previous_end = span[1]
    return paragraphs


@dataclass(frozen=True)
class _Window:
    """What one passage may hold: word pieces (special tokens left out) and characters."""

    tokens_allowed: int
    chars_allowed: int

    def fits(self, start: int, end: int, tokens: int) -> bool:
        return tokens <= self.tokens_allowed and end - start <= self.chars_allowed

    def tokens(self, text: str, start: int, end: int, count_tokens) -> int:
        """Word pieces in `text[start:end]`; not counted (the window's size plus one) when it
        has too many characters to fit anyway, which spares the tokenizer megabytes of one word."""
        if end - start > self.chars_allowed:
            return self.tokens_allowed + 1
        return count_tokens(text[start:end]) - _SPECIAL_TOKENS


def _fit(text: str, sentence: tuple[int, int, int], window: _Window, count_tokens) -> list[tuple[int, int, int]]:
    """Cut a sentence too long for the window between words; shorter ones pass through."""
    start, end, tokens = sentence
    if window.fits(start, end, tokens):
        return [sentence]
    words = [(m.start(), m.end()) for m in _WHITESPACE_RUN.finditer(text, start, end)]
    pieces: list[tuple[int, int, int]] = []
    piece_start, piece_tokens, last_end = start, 0, start
    for word_start, word_end in words:
        word_tokens = window.tokens(text, word_start, word_end, count_tokens)
        too_long = not window.fits(word_start, word_end, word_tokens)
        if piece_tokens and (too_long or not window.fits(piece_start, word_end, piece_tokens + word_tokens)):
            pieces.append((piece_start, last_end, piece_tokens))
            piece_tokens = 0
        if too_long:  # one "word" longer than the window (a URL, a base64 blob, a run of letters)
            pieces.extend(_split_chars(text, word_start, word_end, window, count_tokens))
            continue
        if not piece_tokens:
            piece_start = word_start
        piece_tokens += word_tokens
        last_end = word_end
    if piece_tokens:
        pieces.append((piece_start, last_end, piece_tokens))
    return pieces


def _split_chars(text: str, start: int, end: int, window: _Window, count_tokens) -> list[tuple[int, int, int]]:
    """Last resort for a run without spaces: halve until each piece fits."""
    tokens = window.tokens(text, start, end, count_tokens)
    if window.fits(start, end, tokens) or end - start <= 1:
        return [(start, end, tokens)]
    middle = (start + end) // 2
    return _split_chars(text, start, middle, window, count_tokens) + _split_chars(
        text, middle, end, window, count_tokens
    )


def _pack(sentences: list[tuple[int, int, int]], window: _Window) -> list[tuple[int, int, int]]:
    """Pack a paragraph's sentences into as few passages as fit, of balanced size."""
    if not sentences:
        return []
    total = sum(tokens for _, _, tokens in sentences)
    first, last = sentences[0][0], sentences[-1][1]
    if window.fits(first, last, total):
        return [(first, last, total)]
    # As many parts as the tokens need, or the characters (a long run of one-token letters).
    parts = max(-(-total // window.tokens_allowed), -(-(last - first) // window.chars_allowed))
    target = total / parts
    packed: list[tuple[int, int, int]] = []
    start, tokens = first, 0
    previous_end = start
    for s, e, t in sentences:
        # Close the current piece when adding this sentence overshoots the balanced
        # target by more than stopping short of it does, or would not fit the window.
        if tokens and (not window.fits(start, e, tokens + t) or tokens + t / 2 > target):
            packed.append((start, previous_end, tokens))
            start, tokens = s, 0
        tokens += t
        previous_end = e
    packed.append((start, previous_end, tokens))
    return packed


def _merge_short(
    text: str, pieces: list[tuple[int, int, int]], min_tokens: int, window: _Window, count_tokens
) -> list[tuple[int, int, int]]:
    """Merge a short piece into the next one when both fit the window together.

    What lies between them counts too: a line without a word ("<", "×") is
    no passage of its own, but a merged passage spans it.
    """
    merged: list[tuple[int, int, int]] = []
    for piece in pieces:
        if merged and merged[-1][2] < min_tokens:
            between = text[merged[-1][1] : piece[0]]
            tokens = merged[-1][2] + piece[2] + (count_tokens(between) - _SPECIAL_TOKENS if between.strip() else 0)
            if window.fits(merged[-1][0], piece[1], tokens):
                piece = (merged.pop()[0], piece[1], tokens)
        merged.append(piece)
    return merged
