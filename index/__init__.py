"""The stored index and everything that reads it: search, answers, evaluation."""

from pathlib import Path

DEFAULT_INDEX = Path("data/index")
