"""Counting documents the same way everywhere: a file is one document, however many records it holds.

A .jsonl file of 300 records is one file but 300 documents to the index
(each record is cited on its own), so "8 documents" on one page and "307"
on another both looked right and disagreed. Every count a person reads
goes through `document_count`: the files, and the records only when they
differ.
"""

from __future__ import annotations

from collections.abc import Iterable

from index.records import DocumentInfo


def plural(count: int, word: str, words: str | None = None) -> str:
    """ "1 document", "2 documents" (with thousands separators)."""
    return f"{count:,} {word if count == 1 else (words or word + 's')}"


def document_count(files: int, documents: int | None = None) -> str:
    """ "1 document", "8 documents", or "8 documents (307 counting each .jsonl record)".

    Args:
        files: Source files that gave documents.
        documents: The documents the index holds (a record of a .jsonl file is one); None: as many as files.
    """
    said = plural(files, "document")
    if documents is None or documents == files:
        return said
    return f"{said} ({documents:,} counting each .jsonl record)"


def count_documents(documents: Iterable[DocumentInfo]) -> str:
    """`document_count` of an index's documents."""
    documents = list(documents)
    return document_count(len({d.source for d in documents}), len(documents))
