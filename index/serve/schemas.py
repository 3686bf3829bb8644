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


class DocumentResponse(BaseModel):
    doc_id: str
    source: str
    chars: int
    text: str = Field(description="The extracted text; a hit's start and end index it.")


class Problem(BaseModel):
    detail: str
