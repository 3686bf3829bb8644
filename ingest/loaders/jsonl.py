"""JSONL collections (the BEIR layout, `{"_id", "title", "text"}` a line): one document per record."""

from __future__ import annotations

import json

from index.records import Skipped
from ingest.loaders.document import Document
from ingest.loaders.text import SURROGATE, decode_text, valid_unicode


def read_jsonl(data: bytes, source: str) -> tuple[list[Document], list[Skipped]]:
    """One document per record; a bad line, or an `_id` already used in this file, is a problem.

    A record is known by its file and its `_id` together, so the same `_id` in
    two files is two documents, and no file can shadow another.
    """
    documents, problems = [], []
    first_line: dict[str, int] = {}
    for number, line in enumerate(decode_text(data).splitlines(), start=1):
        if not line.strip():
            continue
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
