"""`winnow bench peers`: Winnow vs Milvus Lite vs an in-process FAISS + bm25s script (see run.py)."""

from winnow.bench.peers.run import main

__all__ = ["main"]
