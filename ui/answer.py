"""What the answer box says: which sentences it quotes and how sure it sounds.

The box quotes the best hit's answer sentence, and a second one when a hit
from another document is confident on its own (`SECOND_QUOTE_CONFIDENCE`)
and says something else, so two sources that agree or complement each other
are both visible. How sure the box sounds follows the verdict, which the
search derives from the calibrated confidence: a strong answer, the closest
passages that may not answer, or no answer at all; an answer whose best
passage is less than `STRONG_CONFIDENCE` likely to answer is called likely,
not strong.
"""

from __future__ import annotations

from index.records import Answer, Hit, Verdict

# A second source is quoted only when it is itself more likely than not to answer.
SECOND_QUOTE_CONFIDENCE = 0.5
# An answered question whose best passage is at least this likely to answer is called strong; the
# search answers from a lower confidence (SearchSettings.confident), which is said more carefully.
STRONG_CONFIDENCE = 0.5
STRONG = "Strong match in your documents"
LIKELY = "Likely answer from your documents"


def quoted_hits(answer: Answer, limit: int = 2) -> list[Hit]:
    """The hits whose answer sentences the box quotes, best first (none when nothing answers).

    Args:
        answer: The search result.
        limit: At most this many quotes, each from a different document.
    """
    if answer.verdict is Verdict.NOT_ANSWERED or not answer.hits:
        return []
    chosen = [answer.hits[0]]
    if answer.verdict is not Verdict.ANSWERED:
        return chosen
    for hit in answer.hits[1:]:
        if len(chosen) >= limit:
            break
        if (
            hit.confidence >= SECOND_QUOTE_CONFIDENCE
            and _document(hit) not in {_document(h) for h in chosen}
            and _words(hit.answer.text) not in {_words(h.answer.text) for h in chosen}
        ):
            chosen.append(hit)
    return chosen


def sureness(answer: Answer) -> str:
    """How sure the answer is, in words."""
    if answer.verdict is Verdict.ANSWERED:
        return STRONG if answer.confidence >= STRONG_CONFIDENCE else LIKELY
    return answer.verdict.label


def _document(hit: Hit) -> tuple[str, str]:
    location = hit.passage.location
    return location.source, location.doc_id


def _words(text: str) -> str:
    return " ".join(text.lower().split())
