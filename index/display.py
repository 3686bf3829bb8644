"""Answers as plain text for the terminal (`python -m index query`).

Documents may hold control characters (an ESC sequence would drive the
terminal), so everything from a document or a file name is printed on one
line without them. The browser's rendering is `ui.markdown`.
"""

from __future__ import annotations

from index.records import Answer, Verdict
from index.search.mentions import Mentions
from index.search.settings import RetrievalMode

NO_ANSWER = Verdict.NOT_ANSWERED.label


def format_answer(answer: Answer, explain: bool = False) -> str:
    """Readable terminal rendering: the question, then numbered citations with their answer sentence."""
    lines = [f"Q: {_single_line(answer.query)}"]
    if answer.corrected:
        lines.append(
            f"   Nothing confident for the question as typed; showing answers for: {_single_line(answer.suggestion)}"
        )
    elif answer.suggestion:
        lines.append(f"   Did you mean: {_single_line(answer.suggestion)}")
    if answer.verdict is Verdict.NOT_ANSWERED:
        lines.append(f"   {NO_ANSWER}" + (" Nearest passages, weak matches:" if answer.hits else ""))
    elif answer.verdict is Verdict.UNSURE:
        lines.append(f"   {Verdict.UNSURE.label}:")
    for hit in answer.hits:
        also = hit.passage.also_cited()
        # File names may hold control characters too.
        cite = _single_line(hit.passage.location.cite() + (f" (also {also})" if also else ""))
        lines.append(
            f"[{hit.rank}] {cite}  score {hit.score:.4f}, similarity {hit.similarity:.2f}, confidence {hit.confidence:.2f}"
        )
        if explain:
            lines.append(
                f"    ranks: {RetrievalMode.DENSE.label} {_rank(hit.dense_rank)}, "
                f"{RetrievalMode.KEYWORD.label} {_rank(hit.keyword_rank)}, {RetrievalMode.HYBRID.label} {hit.rank}"
            )
            if hit.parts is not None:
                p = hit.parts
                lines.append(
                    f"    score: passage cosine {p.passage_cosine:.3f}, best sentence cosine {p.sentence_cosine:.3f} "
                    f"-> dense {p.dense:.3f}; BM25 {p.keyword:.2f}; dense weight {p.dense_weight:.2f} -> fused {p.fused:.4f}"
                )
        if hit.passage.section:  # the heading path, for documents whose reader knows their headings
            lines.append(f"    under: {_single_line(hit.passage.section)}")
        lines.append(f"    » {_single_line(hit.answer.text)}")
    return "\n".join(lines)


def format_mentions(found: Mentions) -> str:
    """Every mention for the terminal: the count, then each document with its mentions' lines (or pages)."""
    documents = len(found.documents)
    lines = [
        f"{_single_line(found.phrase)}: {found.total} mention{'' if found.total == 1 else 's'} "
        f"in {documents} document{'' if documents == 1 else 's'}"
    ]
    for doc in found.documents:
        label = doc.source if doc.doc_id == doc.source else f"{doc.source} [{doc.doc_id}]"
        lines.append(f"{_single_line(label)} ({doc.count})")
        for m in doc.mentions:
            where = f"page {m.page}, line {m.line}" if m.page is not None else f"line {m.line}"
            lines.append(f"    {where}, characters {m.start}-{m.end}: {_single_line(m.text)}")
    return "\n".join(lines)


def _rank(rank: int | None) -> str:
    return "-" if rank is None else str(rank)


def _single_line(text: str) -> str:
    return " ".join(_printable(text).split())


def _printable(text: str) -> str:
    """`text` without control characters: a document's ESC sequences must not drive the terminal."""
    return "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text)
