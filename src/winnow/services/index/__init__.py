"""Index shard service: FAISS + BM25 + payloads with a write-ahead log (see docs/index.md)."""
