"""The two retrievers over a version's passages: dense vectors (FAISS) and keywords (BM25)."""
