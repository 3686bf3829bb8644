"""The stored index and everything that reads it: search, answers, evaluation."""

from index.config import DEFAULT_INDEX

__all__ = ["DEFAULT_INDEX"]
