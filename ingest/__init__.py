"""Load documents, split them into passages, and publish them into an index."""

from pathlib import Path

DEFAULT_CORPUS = Path("corpus")
