"""Answering a question: query cleaning, fusion, the answer sentence, confidence, `Searcher`, the sharded merge;
filters, every mention of a phrase, and "did you mean"."""
