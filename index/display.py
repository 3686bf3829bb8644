"""Answers as plain text for the terminal (`python -m index query`).

Documents may hold control characters (an ESC sequence would drive the
terminal), so everything from a document or a file name is printed on one
line without them. The browser's rendering is `ui.markdown`.
"""

from __future__ import annotations

from index.records import Answer, Verdict
from index.search.settings import RetrievalMode

NO_ANSWER = Verdict.NOT_ANSWERED.label


def format_answer(answer: Answer, explain: bool = False) -> str:
    """Readable terminal rendering: the question, then numbered citations with their answer sentence."""
    lines = [f"Q: {_single_line(answer.query)}"]
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


def _rank(rank: int | None) -> str:
    return "-" if rank is None else str(rank)


def _single_line(text: str) -> str:
    return " ".join(_printable(text).split())


def _printable(text: str) -> str:
    """`text` without control characters: a document's ESC sequences must not drive the terminal."""
    return "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text)
