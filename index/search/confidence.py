"""How sure a hit is: a calibrated probability that its passage answers the question.

A logistic model over features that mean the same thing on any collection:
the hit's dense score (cosine similarities, a property of the model), how
far it is below the best hit, how far it stands above the next one, its
rank, whether both retrievers rank it first (meaning and words agree,
however everyday the wording), and how rare in English the rarest word of
the question is that the collection never mentions (`index.search.salience`:
"metformin" asked of leaflets that never name it). The weights are fitted by `bench/tune.py` on the development sets at
once (SciFact train, MedQuAD, both question sets in corpus/, realdocs-dev
and realdocs-web), each set weighted equally, plus questions asked of a collection they were not
written for (nothing there answers them); the calibration of every set is
in bench/RESULTS.md. They ship as a few numbers in `confidence.json`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

FEATURES = ("dense", "below_best", "above_next", "log_rank", "agree", "unknown")
BUNDLED = Path(__file__).with_name("confidence.json")


def features(dense: Sequence[float], agree: Sequence[bool] = (), unknown: float = 0.0) -> np.ndarray:
    """The model's inputs for hits whose dense scores are `dense`, in rank order.

    Args:
        dense: The dense scores of the hits, best-ranked first, plus the score
            of the hit ranked just below the last one when there is one (its
            gap to the next counts).
        agree: For each hit, whether both retrievers rank it first (missing: no).
        unknown: The question's `index.search.salience.unknown_rarity`.

    Returns:
        One row per hit (`len(dense)` rows; the extra score gets a row too).
    """
    scores = np.asarray(dense, dtype=np.float64)
    if not len(scores):
        return np.zeros((0, len(FEATURES)))
    below_best = scores[0] - scores
    above_next = np.append(scores[:-1] - scores[1:], 0.0)
    log_rank = np.log(np.arange(1, len(scores) + 1))
    agreed = np.zeros(len(scores))
    agreed[: len(agree)] = np.asarray(agree, dtype=np.float64)[: len(scores)]
    return np.stack([scores, below_best, above_next, log_rank, agreed, np.full(len(scores), unknown)], axis=1)


@dataclass(frozen=True)
class ConfidenceModel:
    """Logistic regression over `FEATURES`."""

    weights: tuple[float, ...]
    intercept: float

    def __post_init__(self) -> None:
        if len(self.weights) != len(FEATURES):
            raise ValueError(f"expected {len(FEATURES)} weights ({', '.join(FEATURES)}), got {len(self.weights)}")

    def probabilities(self, dense: Sequence[float], agree: Sequence[bool] = (), unknown: float = 0.0) -> np.ndarray:
        """The probability that each hit answers (see `features`)."""
        logits = features(dense, agree, unknown) @ np.asarray(self.weights) + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))

    def to_json(self) -> dict:
        return {"features": list(FEATURES), "weights": list(self.weights), "intercept": self.intercept}

    @classmethod
    def from_json(cls, data: dict) -> ConfidenceModel:
        if list(data.get("features", [])) != list(FEATURES):
            raise ValueError(f"confidence model expects features {list(FEATURES)}, file has {data.get('features')}")
        return cls(tuple(float(w) for w in data["weights"]), float(data["intercept"]))

    @staticmethod
    @cache
    def bundled() -> ConfidenceModel:
        """The model fitted by bench/tune.py and shipped with the package."""
        return ConfidenceModel.from_json(json.loads(BUNDLED.read_text(encoding="utf-8")))
