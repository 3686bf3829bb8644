"""The JSON the HTTP API reads and writes (pydantic models, shown in its OpenAPI description)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from index.search.query import MAX_QUERY_CHARS

# Each retriever proposes 100 candidates (`SearchSettings.candidates`): more hits than that do not exist.
MAX_K = 100


class QueryRequest(BaseModel):
    """One question."""

    query: str = Field(description=f"The question, free text; searched up to {MAX_QUERY_CHARS:,} characters.")
    k: int = Field(5, description=f"How many passages to return, 1 to {MAX_K}.")
    sources: list[str] | None = Field(
        None, description="Only passages found in these files (paths relative to the corpus, as in `source`)."
    )
    explain: bool = Field(False, description="Add each hit's ranks and score parts, as `query --json --explain`.")
    where: dict[str, str | list[str]] | None = Field(
        None,
        description="Only documents that match, before ranking: type (pdf, html, md, docx, txt, jsonl), folder, "
        "after and before (YYYY-MM-DD, the file's date), tag, title; each a value or a list of alternatives, "
        'as `query --where`. Example: {"type": "pdf", "after": "2026-01-01"}.',
    )


class Hit(BaseModel):
    rank: int
    score: float
    doc_id: str
    source: str
    start: int
    end: int
    text: str
    answer: dict[str, Any]
    confidence: float


class QueryResponse(BaseModel):
    """Exactly the object `python -m index query --json` prints for the question."""

    query: str
    answered: bool
    verdict: str = Field(description="answered, unsure (closest passages; these may not answer) or not_answered")
    confidence: float
    hits: list[Hit]
    suggestion: str | None = Field(
        None, description="The question with its misspelt words corrected ('did you mean'), or null."
    )
    corrected: bool = Field(
        False, description="The verdict and hits answer the suggestion: the question as typed found nothing confident."
    )


class Mention(BaseModel):
    start: int
    end: int
    line: int
    page: int | None
    text: str


class DocumentMentions(BaseModel):
    source: str
    doc_id: str
    count: int
    mentions: list[Mention]


class MentionsResponse(BaseModel):
    """Exactly the object `python -m index mentions --json` prints."""

    phrase: str
    total: int
    documents: list[DocumentMentions]


class DocumentResponse(BaseModel):
    doc_id: str
    source: str
    chars: int
    text: str = Field(description="The extracted text; a hit's start and end index it.")


class Problem(BaseModel):
    detail: str
