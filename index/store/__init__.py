"""The on-disk index: the pointer and lock, the writer, the reader, stored passages and texts, serving-shard files."""
