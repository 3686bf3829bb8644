"""Documents into passages with exact character spans.

A passage is a paragraph when the paragraph fits the model's window; longer
paragraphs are cut at sentence ends into balanced pieces, and a single
sentence longer than the window is cut between words. Short paragraphs
(headings, list stubs) are merged with the paragraph that follows. Every
passage records where it came from, with `document.text[start:end] == text`,
so citations and highlights are exact. Text without any word in it (a lone
`×`) is not a passage.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from index.records import Location, Settings
from index.sentences import split_sentences
from ingest.loaders import Document

_WORD = re.compile(r"[^\W_]")  # a letter or digit: "×" or "---" alone is not a passage
_WHITESPACE_RUN = re.compile(r"\S+")
# Special tokens ([CLS], [SEP]) that every encoded passage carries.
_SPECIAL_TOKENS = 2


@dataclass(frozen=True)
class Chunk:
    """A passage before de-duplication: its text and the one place it came from."""

    text: str
    location: Location


def chunk_document(doc: Document, count_tokens: Callable[[str], int], settings: Settings) -> list[Chunk]:
    """Split one document into passages.

    Args:
        doc: The document with its extracted text.
        count_tokens: The embedder's token counter (special tokens included).
        settings: `max_tokens` bounds every passage; `min_tokens` triggers merging.

    Returns:
        Chunks in document order, non-overlapping, each within `max_tokens`.
    """
    budget = settings.max_tokens - _SPECIAL_TOKENS
    pieces: list[tuple[int, int, int]] = []  # (start, end, tokens) of each passage-to-be
    for paragraph in _paragraphs(doc.text):
        sentences = [(s, e, count_tokens(doc.text[s:e]) - _SPECIAL_TOKENS) for s, e in paragraph]
        sentences = [piece for sent in sentences for piece in _fit(doc.text, sent, budget, count_tokens)]
        pieces.extend(_pack(sentences, budget))
    pieces = [p for p in pieces if _WORD.search(doc.text, p[0], p[1])]
    pieces = _merge_short(pieces, settings.min_tokens, budget)
    chunks = []
    line, counted_to = 1, 0  # pieces are in order: count line breaks once, in C
    for start, end, _ in pieces:
        text = doc.text[start:end]
        line += doc.text.count("\n", counted_to, start)
        counted_to = start
        location = Location(doc.doc_id, doc.source, start, end, line, doc.page_at(start))
        chunks.append(Chunk(text, location))
    return chunks


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


def _fit(text: str, sentence: tuple[int, int, int], budget: int, count_tokens) -> list[tuple[int, int, int]]:
    """Cut a sentence longer than the budget between words; shorter ones pass through."""
    start, end, tokens = sentence
    if tokens <= budget:
        return [sentence]
    words = [(m.start(), m.end()) for m in _WHITESPACE_RUN.finditer(text, start, end)]
    pieces: list[tuple[int, int, int]] = []
    piece_start, piece_tokens, last_end = start, 0, start
    for word_start, word_end in words:
        word_tokens = count_tokens(text[word_start:word_end]) - _SPECIAL_TOKENS
        if piece_tokens and (piece_tokens + word_tokens > budget or word_tokens > budget):
            pieces.append((piece_start, last_end, piece_tokens))
            piece_tokens = 0
        if word_tokens > budget:  # one "word" longer than the window (a URL, a base64 blob)
            pieces.extend(_split_chars(text, word_start, word_end, budget, count_tokens))
            continue
        if not piece_tokens:
            piece_start = word_start
        piece_tokens += word_tokens
        last_end = word_end
    if piece_tokens:
        pieces.append((piece_start, last_end, piece_tokens))
    return pieces


def _split_chars(text: str, start: int, end: int, budget: int, count_tokens) -> list[tuple[int, int, int]]:
    """Last resort for a run without spaces: halve until each piece fits."""
    tokens = count_tokens(text[start:end]) - _SPECIAL_TOKENS
    if tokens <= budget or end - start <= 1:
        return [(start, end, tokens)]
    middle = (start + end) // 2
    return _split_chars(text, start, middle, budget, count_tokens) + _split_chars(
        text, middle, end, budget, count_tokens
    )


def _pack(sentences: list[tuple[int, int, int]], budget: int) -> list[tuple[int, int, int]]:
    """Pack a paragraph's sentences into as few passages as fit, of balanced size."""
    total = sum(tokens for _, _, tokens in sentences)
    if total <= budget:
        return [(sentences[0][0], sentences[-1][1], total)] if sentences else []
    parts = -(-total // budget)
    target = total / parts
    packed: list[tuple[int, int, int]] = []
    start, tokens = sentences[0][0], 0
    previous_end = start
    for s, e, t in sentences:
        # Close the current piece when adding this sentence overshoots the balanced
        # target by more than stopping short of it does, or would break the budget.
        if tokens and (tokens + t > budget or tokens + t / 2 > target):
            packed.append((start, previous_end, tokens))
            start, tokens = s, 0
        tokens += t
        previous_end = e
    packed.append((start, previous_end, tokens))
    return packed


def _merge_short(pieces: list[tuple[int, int, int]], min_tokens: int, budget: int) -> list[tuple[int, int, int]]:
    """Merge a short piece into the next one when both fit the budget together."""
    merged: list[tuple[int, int, int]] = []
    for piece in pieces:
        if merged and merged[-1][2] < min_tokens and merged[-1][2] + piece[2] <= budget:
            start, _, tokens = merged.pop()
            piece = (start, piece[1], tokens + piece[2])
        merged.append(piece)
    return merged
