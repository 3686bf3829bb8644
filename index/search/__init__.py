"""Answering a question: query cleaning, fusion, the answer sentence, confidence, `Searcher`, the sharded merge."""
