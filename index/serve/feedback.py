"""POST /feedback: a 👍 or 👎 on an answer, stored beside the index as `index.feedback` votes.

The app's vote and this one are the same record: the question, the passage
the answer quoted, optionally the passage that holds the answer instead,
and the index version that answered (the version serving the request).
`python -m index eval --feedback --index DIR` scores the index on them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from index.feedback import QuotedPassage, Thumb, Vote, record_vote
from index.search.query import clean_query
from index.serve.watcher import View


class PassageRef(BaseModel):
    """A passage as a hit names it."""

    id: str = Field("", description="The passage's id (optional: the span identifies it too).")
    source: str = Field(description="Its file, relative to the corpus (a hit's `source`).")
    start: int = Field(ge=0, description="A hit's `start`.")
    end: int = Field(ge=0, description="A hit's `end`.")
    doc_id: str | None = Field(None, description="A hit's `doc_id` (for records of a .jsonl file).")


class FeedbackRequest(BaseModel):
    """One vote on an answer."""

    query: str = Field(description="The question, as asked.")
    vote: str = Field(description="up or down")
    passage: PassageRef | None = Field(None, description="The hit the answer quoted (usually hit 1).")
    answer_in: PassageRef | None = Field(None, description="The passage that holds the answer instead, if known.")


class FeedbackResponse(BaseModel):
    recorded: bool
    version: str


def add_feedback_route(
    app: FastAPI, current: Callable[[], View], authorized: Callable, index_dir: Path | None, errors: dict
) -> None:
    """Add POST /feedback to `app`, storing votes in `index_dir` (the backend's index folder)."""

    @app.post("/feedback", response_model=FeedbackResponse, responses=errors, dependencies=[Depends(authorized)])
    async def feedback(request: FeedbackRequest) -> dict:
        """Record a 👍 or 👎 on an answer; `python -m index eval --feedback` scores the index on the votes."""
        if index_dir is None:
            raise HTTPException(503, "this server keeps no feedback (it has no index folder)")
        view = current()
        vote = _vote(request, view)
        await run_in_threadpool(record_vote, index_dir, vote)
        return {"recorded": True, "version": view.version}


def _vote(request: FeedbackRequest, view: View) -> Vote:
    """The request as a vote; 422 for an empty question, a vote that is not up or down, or an unknown source."""
    if not clean_query(request.query):
        raise HTTPException(422, "query is empty; send the question the vote is about")
    try:
        thumb = Thumb.from_str(request.vote.strip().lower())
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    passages = []
    for name, ref in (("passage", request.passage), ("answer_in", request.answer_in)):
        if ref is not None and ref.source not in view.sources:
            raise HTTPException(422, f"{name}.source {ref.source!r} is not a source of the index (GET /documents)")
        if ref is not None and ref.end < ref.start:
            raise HTTPException(422, f"{name}: end must not be before start")
        passages.append(None if ref is None else QuotedPassage(ref.id, ref.source, ref.start, ref.end, ref.doc_id))
    return Vote(clean_query(request.query), thumb, passages[0], passages[1], view.version)
