"""JSONL collections (the BEIR layout, `{"_id", "title", "text"}` a line): one document per record.

The file is read a line at a time, each line at most `MAX_JSONL_RECORD_BYTES`
(a longer one is skipped unread, in 1 MB steps), and at most
`MAX_JSONL_RECORDS` records, so a collection of any size, or a line of
hundreds of megabytes, costs one record's memory at a time.
"""

from __future__ import annotations

import codecs
import io
import json
from collections.abc import Iterator
from pathlib import Path

import ingest.loaders.limits as limits
from index.records import Skipped
from ingest.loaders.document import Document, LoadError
from ingest.loaders.text import SURROGATE, decode_text, valid_unicode

_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def read_jsonl(path: Path, source: str) -> tuple[list[Document], list[Skipped]]:
    """One document per record; a bad line, or an `_id` already used in this file, is a problem.

    A record is known by its file and its `_id` together, so the same `_id` in
    two files is two documents, and no file can shadow another.

    Raises:
        LoadError: More than `MAX_JSONL_RECORDS` records, or a line that is binary, not text.
    """
    documents, problems = [], []
    first_line: dict[str, int] = {}
    for number, line in _lines(path, source, problems):
        if not line.strip():
            continue
        if len(documents) + len(problems) >= limits.MAX_JSONL_RECORDS:
            raise LoadError(f"refused: more than {limits.MAX_JSONL_RECORDS:,} records; split it into smaller files")
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            doc_id, text = str(record["_id"]), record["text"]
            title = record.get("title") or ""
            if not isinstance(text, str) or not isinstance(title, str):
                raise ValueError('"title" and "text" must be strings')
        except (ValueError, KeyError) as exc:
            problems.append(Skipped(f"{source}:{number}", f"invalid JSON record: {exc}"))
            continue
        if SURROGATE.search(doc_id):
            problems.append(Skipped(f"{source}:{number}", f"invalid JSON record: _id {doc_id!r} is not valid Unicode"))
            continue
        if doc_id in first_line:
            problems.append(
                Skipped(f"{source}:{number}", f"duplicate record id {doc_id!r} (first on line {first_line[doc_id]})")
            )
            continue
        first_line[doc_id] = number
        title, text = valid_unicode(title), valid_unicode(text)
        full = f"{title}\n\n{text}" if title.strip() else text
        documents.append(Document(doc_id, source, full, title=title))
    return documents, problems


def _lines(path: Path, source: str, problems: list[Skipped]) -> Iterator[tuple[int, str]]:
    """Each line of the file, decoded, with its number; a line over `MAX_JSONL_RECORD_BYTES` is a problem, unread."""
    with open(path, "rb") as handle:
        head = handle.read(4)
        wide = next((encoding for bom, encoding in _WIDE_BOMS if head.startswith(bom)), None)
        handle.seek(len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0)
        lines = io.TextIOWrapper(handle, encoding=wide, newline="") if wide else handle
        number = 0
        while True:
            line = lines.readline(limits.MAX_JSONL_RECORD_BYTES + 1)
            if not line:
                return
            number += 1
            if len(line) > limits.MAX_JSONL_RECORD_BYTES and line[-1:] not in ("\n", b"\n"):
                size = len(line) + _skip_line(lines)
                problems.append(
                    Skipped(
                        f"{source}:{number}",
                        f"record of {size / 2**20:,.0f} MB, more than {limits.MAX_JSONL_RECORD_BYTES / 2**20:,.0f} MB; "
                        "split it into smaller records",
                    )
                )
                continue
            if isinstance(line, str):
                yield number, line.lstrip("\ufeff") if number == 1 else line
                continue
            try:
                yield number, line.decode("utf-8")
            except UnicodeDecodeError:
                yield number, decode_text(line)  # a Windows-written file: cp1252, else Latin-1


def _skip_line(lines) -> int:
    """Read past the rest of the current line in 1 MB steps; returns the bytes (or characters) skipped."""
    skipped = 0
    while True:
        block = lines.readline(2**20)
        skipped += len(block)
        if not block or block[-1:] in ("\n", b"\n"):
            return skipped
