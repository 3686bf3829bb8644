"""How search ranks and answers: the retrieval mode, the fusion and every tuned threshold, in one frozen record.

The defaults were chosen on the development sets at once by `bench/tune.py`
(its grid and figures are in bench/RESULTS.md, "Search settings").
"""

from __future__ import annotations

from dataclasses import dataclass

from index.records import Choice


class RetrievalMode(Choice):
    """Which retrievers rank the passages: the dense one, the keyword one, or both fused."""

    DENSE = "dense"
    KEYWORD = "keyword"
    HYBRID = "hybrid"

    @classmethod
    def what(cls) -> str:
        return "mode"

    @property
    def label(self) -> str:
        """The name of a hit's rank in this mode's ranking: "dense", "keyword" or "fused"."""
        return "fused" if self is RetrievalMode.HYBRID else self.value


class Fusion(Choice):
    """How the dense and keyword rankings are combined in hybrid mode."""

    RRF = "rrf"
    CONVEX = "convex"

    @property
    def label(self) -> str:
        if self is Fusion.RRF:
            return "reciprocal rank fusion"
        return "convex combination of min-max normalised scores"


@dataclass(frozen=True)
class SearchSettings:
    """Query-time knobs (the defaults are chosen by bench/tune.py on the development sets).

    Attributes:
        candidates: How deep each retriever's list goes before fusion.
        fusion: `Fusion.CONVEX` (weighted sum of min-max normalised scores) or
            `Fusion.RRF` (reciprocal rank fusion); its value as text is accepted too.
        rrf_k: Reciprocal rank fusion constant.
        dense_weight: Weight of the dense score in convex fusion when the dense
            retriever's best score is 0.5.
        dense_weight_slope: How much the dense weight grows per unit of the
            dense retriever's best score above 0.5 (0: a fixed weight).
        sentence_weight: Share of the best answer candidate's cosine in a
            passage's dense score; the passage's own cosine gets the rest.
        answer_threshold: A question is refused when no hit's passage cosine
            reaches this.
        confident: The best hit's confidence at or above which the question
            counts as answered; below it the hits are "closest passages".
        quantity_bonus: Added to an answer candidate that states a quantity
            when the question asks for one ("how long", "how much", ...).
        question_penalty: Taken from an answer candidate that is itself a question.
        window: A candidate next to the best one and scoring within this of
            it is highlighted with it.
        rerank_depth: How many of the first passages are reordered by how well their best sentence
            answers (`index.search.answer.rerank_by_answer`; 1: none).
        rerank_weight: How far, in fused-score units, a sentence nudge moves its passage there (chosen
            on realdocs-dev and realdocs-web with the bundled sets as the guard: bench/RESULTS.md).
    """

    candidates: int = 100
    fusion: Fusion = Fusion.CONVEX
    rrf_k: int = 60
    dense_weight: float = 0.7
    dense_weight_slope: float = 0.3
    sentence_weight: float = 0.5
    answer_threshold: float = 0.40
    confident: float = 0.2
    quantity_bonus: float = 0.1
    question_penalty: float = 0.3
    window: float = 0.05
    rerank_depth: int = 5
    rerank_weight: float = 2.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "fusion", Fusion.from_str(self.fusion))
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ValueError(f"dense_weight must be in [0, 1], got {self.dense_weight}")
        if not 0.0 <= self.sentence_weight <= 1.0:
            raise ValueError(f"sentence_weight must be in [0, 1], got {self.sentence_weight}")
        if self.candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {self.candidates}")
        if self.rrf_k < 0:
            raise ValueError(f"rrf_k must be non-negative, got {self.rrf_k}")
        if self.rerank_depth < 1:
            raise ValueError(f"rerank_depth must be at least 1, got {self.rerank_depth}")
        if self.window < 0:
            raise ValueError(f"window must be non-negative, got {self.window}")
