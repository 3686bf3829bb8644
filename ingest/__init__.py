"""Load documents, split them into passages, and publish them into an index."""

from index.config import DEFAULT_CORPUS

__all__ = ["DEFAULT_CORPUS"]
