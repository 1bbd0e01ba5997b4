"""Cost and gain of dynamic int8 quantisation of all-MiniLM-L6-v2 on CPU, measured on SciFact.

Quality: the whole corpus and all queries are encoded with the int8 model (torch dynamic quantisation of every
nn.Linear, weights int8, activations quantised on the fly) and compared with the fp32 cache of
studies/scifact_embeddings.py: dense alone and convex-z fusion with BM25 (alpha 0.5), nDCG@10 / recall on train
and test, plus the cosine between each document's fp32 and int8 vectors.
Speed: documents/s on the same 256 abstracts (title + text, 256 tokens, batch 32), fp32 and int8 alternated
three times each and the best of each kept, since the machine's 2 cores are shared.

Run: .venv/bin/python studies/quantization_study.py     (≈ 5–10 min; writes /tmp/winnow-research/quantization.json)
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fusion_study as fs  # noqa: E402
import scifact_embeddings as emb  # noqa: E402

from winnow.eval.beir import load_beir  # noqa: E402

INT8_NPY = emb.CACHE_DIR / "scifact_minilm_int8_title_text_256.npy"
INT8_Q_NPY = emb.CACHE_DIR / "scifact_minilm_int8_queries_256.npy"
OUT = emb.CACHE_DIR / "quantization.json"


def quantized(model):
    """A dynamically int8-quantised copy of a sentence-transformers model (nn.Linear layers)."""
    import copy

    import torch
    from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)


def encode(model, texts: list[str], progress: bool = False) -> np.ndarray:
    """L2-normalised float32 vectors, batch 32 (sentence-transformers sorts by length)."""
    return np.asarray(model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                                   show_progress_bar=progress), dtype=np.float32)


def main() -> int:
    import torch

    torch.set_num_threads(2)
    splits = {s: load_beir(emb.DEFAULT_DATASET, s) for s in ("train", "test")}
    corpus = splits["test"].corpus
    doc_ids, fp32_docs = emb.corpus_embeddings({i: {"title": d.title, "text": d.text} for i, d in corpus.items()})
    all_q = {**splits["train"].queries, **splits["test"].queries}
    qids, fp32_q = emb.query_embeddings(all_q)
    texts = [f"{corpus[i].title} {corpus[i].text}".strip() for i in doc_ids]

    fp32 = emb.load_model()
    int8 = quantized(fp32)

    # Speed, alternated, best of three each.
    sample = random.Random(0).sample(texts, 256)
    best = {"fp32": float("inf"), "int8": float("inf")}
    for _ in range(3):
        for name, model in (("fp32", fp32), ("int8", int8)):
            t0 = time.perf_counter()
            encode(model, sample)
            best[name] = min(best[name], time.perf_counter() - t0)
    speed = {name: round(256 / s, 1) for name, s in best.items()}
    print("docs/s", speed, "load", os.getloadavg(), flush=True)

    # Quality: full corpus with int8 (cached).
    if INT8_NPY.is_file() and INT8_Q_NPY.is_file():
        int8_docs, int8_q = np.load(INT8_NPY), np.load(INT8_Q_NPY)
    else:
        t0 = time.perf_counter()
        int8_docs = encode(int8, texts, progress=True)
        print(f"int8 corpus encoded in {time.perf_counter() - t0:.0f}s", flush=True)
        int8_q = encode(int8, [all_q[q] for q in qids])
        np.save(INT8_NPY, int8_docs)
        np.save(INT8_Q_NPY, int8_q)
    cos = np.sum(fp32_docs * int8_docs, axis=1)

    b = fs.FUSION_BM25
    lex = fs.bm25_runs(corpus, {s: splits[s].queries for s in splits}, b["stem"], b["stopwords"] == "en",
                       b["k1"], b["b"])
    rows = {}
    for name, dvecs, qvecs in (("fp32", fp32_docs, fp32_q), ("int8", int8_docs, int8_q)):
        qvec = dict(zip(qids, qvecs))
        for s_name, ds in splits.items():
            ids = list(ds.queries)
            dense = fs.dense_run(doc_ids, dvecs, ids, np.stack([qvec[q] for q in ids]))
            rows[f"{name} dense {s_name}"] = fs.score(dense, ds)
            for window in (80, 1000):
                fused = fs.fuse_run(dense, lex[s_name], lambda d, l, w=window: fs.convex(d, l, 0.5, w, "z"))
                rows[f"{name} convex-z a0.5 w{window} {s_name}"] = fs.score(fused, ds)
    for key, val in rows.items():
        print(f"{key:32s} {val}", flush=True)
    result = {"docs_per_s_best_of_3": speed, "loadavg": os.getloadavg(),
              "cosine_fp32_int8": {"mean": round(float(cos.mean()), 4), "min": round(float(cos.min()), 4),
                                   "p01": round(float(np.percentile(cos, 1)), 4)},
              "metrics": rows}
    OUT.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "metrics"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
