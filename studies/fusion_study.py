"""SciFact study: BM25 analysis, dense MiniLM, RRF / weighted RRF / convex fusion, and MRL coarse-to-fine.

Everything runs in-process (no cluster): bm25s + PyStemmer for lexical, exact inner product over the cached
all-MiniLM-L6-v2 vectors (studies/scifact_embeddings.py) for dense. Every configuration is scored on the TRAIN
split; the best of each family is picked on train nDCG@10, and then every configuration is also scored on TEST
for reporting. Results go to stdout as markdown and to /tmp/winnow-research/fusion_study.json.

Run: .venv/bin/python studies/fusion_study.py [--dataset DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling bench module, run as a script

import scifact_embeddings as emb  # noqa: E402

from winnow.eval.beir import BeirDataset, load_beir  # noqa: E402
from winnow.eval.metrics import evaluate  # noqa: E402

DEPTH = 1000  # how deep each first-stage list is retrieved before fusion windows are applied
KS = (10, 80, 100)
#: The BM25 that fusion uses: the index service's configuration (bm25s defaults, English stemmer, English
#: stopwords). The BM25 grid below shows every stemmed variant within 0.002 nDCG@10 of each other on train.
FUSION_BM25 = {"stem": True, "stopwords": "en", "k1": 1.5, "b": 0.75}
OUT_JSON = emb.CACHE_DIR / "fusion_study.json"
Run = dict[str, dict[str, float]]


# ---------------------------------------------------------------- first stages


def bm25_runs(
    ds_corpus: dict, query_sets: dict[str, dict[str, str]], stem: bool, stop: bool, k1: float, b: float
) -> dict[str, Run]:
    """BM25 (bm25s, method lucene) top-DEPTH runs for each named query set; zero-score hits are dropped."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english") if stem else None
    stopwords = "en" if stop else []
    ids = list(ds_corpus)
    texts = [f"{ds_corpus[i].title} {ds_corpus[i].text}" for i in ids]
    tok = lambda xs: bm25s.tokenize(xs, stopwords=stopwords, stemmer=stemmer, return_ids=False, show_progress=False)  # noqa: E731
    retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
    retriever.index(tok(texts), show_progress=False)
    out = {}
    for name, queries in query_sets.items():
        qids = list(queries)
        docs, scores = retriever.retrieve(tok([queries[q] for q in qids]), k=DEPTH, show_progress=False, n_threads=1)
        out[name] = {
            qid: {ids[d]: float(s) for d, s in zip(docs[r], scores[r]) if s > 0} for r, qid in enumerate(qids)
        }
    return out


def _normalise(m: np.ndarray) -> np.ndarray:
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def dense_run(
    doc_ids: list[str], docs: np.ndarray, qids: list[str], queries: np.ndarray, dim: int = 384, depth: int = DEPTH
) -> Run:
    """Exact inner-product top-depth over the first `dim` dimensions (re-normalised when truncated)."""
    d, q = (docs, queries) if dim == docs.shape[1] else (_normalise(docs[:, :dim]), _normalise(queries[:, :dim]))
    sims = q @ d.T
    top = np.argpartition(-sims, depth - 1, axis=1)[:, :depth]
    return {qid: {doc_ids[j]: float(sims[r, j]) for j in top[r]} for r, qid in enumerate(qids)}


def refine(coarse: Run, doc_index: dict[str, int], docs: np.ndarray, qvec: dict[str, np.ndarray], n: int) -> Run:
    """MRL coarse-to-fine: keep each query's coarse top-n and re-score them with the full-dimension vectors."""
    out: Run = {}
    for qid, hits in coarse.items():
        keep = sorted(hits, key=lambda d: (-hits[d], d))[:n]
        rows = docs[[doc_index[d] for d in keep]]
        out[qid] = dict(zip(keep, (rows @ qvec[qid]).tolist()))
    return out


# ---------------------------------------------------------------- fusion


def top(hits: dict[str, float], n: int) -> list[str]:
    """Doc ids of the n best hits (score desc, id asc)."""
    return sorted(hits, key=lambda d: (-hits[d], d))[:n]


def rrf(lists: Sequence[dict[str, float]], k: float, weights: Sequence[float], window: int) -> dict[str, float]:
    """(Weighted) reciprocal-rank fusion: sum_i w_i / (k + rank_i), ranks from 1, over each list's top-window."""
    fused: dict[str, float] = {}
    for hits, w in zip(lists, weights):
        for rank, doc in enumerate(top(hits, window), start=1):
            fused[doc] = fused.get(doc, 0.0) + w / (k + rank)
    return fused


def _norm_scores(hits: dict[str, float], window: int, how: str) -> tuple[dict[str, float], float]:
    """Normalised scores of the top-window hits and the value a doc absent from the list gets."""
    keep = top(hits, window)
    if not keep:
        return {}, 0.0
    s = np.array([hits[d] for d in keep], dtype=np.float64)
    if how == "minmax":
        lo, span = s.min(), s.max() - s.min()
        z = (s - lo) / span if span > 0 else np.ones_like(s)
        missing = 0.0
    else:  # "z": standardise over the window, absent docs get the window's minimum
        sd = s.std()
        z = (s - s.mean()) / sd if sd > 0 else np.zeros_like(s)
        missing = float(z.min())
    return dict(zip(keep, z.tolist())), missing


def convex(dense: dict[str, float], lex: dict[str, float], alpha: float, window: int, how: str) -> dict[str, float]:
    """alpha * norm(dense) + (1 - alpha) * norm(bm25), normalised over each list's top-window."""
    nd, md = _norm_scores(dense, window, how)
    nl, ml = _norm_scores(lex, window, how)
    return {doc: alpha * nd.get(doc, md) + (1 - alpha) * nl.get(doc, ml) for doc in nd.keys() | nl.keys()}


def fuse_run(dense: Run, lex: Run, fn: Callable[[dict, dict], dict[str, float]]) -> Run:
    """Apply a two-list fusion function query by query."""
    return {qid: fn(dense.get(qid, {}), lex.get(qid, {})) for qid in dense.keys() | lex.keys()}


# ---------------------------------------------------------------- study


def score(run: Run, ds: BeirDataset) -> dict[str, float]:
    """nDCG@10, MRR@10, recall@10/80/100 of a run on a split."""
    m = evaluate(run, ds.qrels, KS)
    return {k: round(m[k], 4) for k in ("ndcg@10", "mrr@10", "recall@10", "recall@80", "recall@100")}


def fusion_grid() -> list[tuple[str, dict, Callable[[dict, dict], dict]]]:
    """Every fusion configuration tried: (family, params, fn(dense_hits, bm25_hits))."""
    grid = []
    # window = how deep each list is read; the gateway asks shards for `candidate_window` (80) per list.
    for window in (80, 1000):
        for k in (1, 5, 10, 20, 40, 60, 100):
            grid.append(("rrf", {"k": k, "window": window}, lambda d, l, k=k, w=window: rrf([d, l], k, (1, 1), w)))
    for k in (10, 20, 60):
        for wd in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
            p = {"k": k, "w_dense": wd, "window": 80}
            grid.append(("wrrf", p, lambda d, l, k=k, wd=wd: rrf([d, l], k, (wd, 1 - wd), 80)))
    for how in ("minmax", "z"):
        for window in (80, 100, 200, 300, 1000):
            for alpha in (0.2, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8):
                p = {"norm": how, "alpha": float(alpha), "window": window}
                grid.append(("convex", p, lambda d, l, a=float(alpha), w=window, h=how: convex(d, l, a, w, h)))
    return grid


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", type=Path, default=emb.DEFAULT_DATASET)
    ap.add_argument("--no-bm25-grid", action="store_true", help="skip the BM25 parameter grid (fusion only)")
    args = ap.parse_args()
    t_start = time.perf_counter()
    splits = {s: load_beir(args.dataset, s) for s in ("train", "test")}
    corpus = splits["test"].corpus
    results: list[dict] = []

    def record(family: str, params: dict, runs: dict[str, Run]) -> None:
        row = {"family": family, "params": params, **{s: score(runs[s], splits[s]) for s in splits}}
        results.append(row)
        print(f"{family:8s} {json.dumps(params):60s} train {row['train']['ndcg@10']:.4f} "
              f"r@80 {row['train']['recall@80']:.4f} | test {row['test']['ndcg@10']:.4f}", flush=True)

    # BM25 analysis
    qsets = {s: splits[s].queries for s in splits}
    bm25_cache: dict[tuple, dict[str, Run]] = {}
    grid = [(stem, stop, k1, b) for stem in (True, False) for stop in (True, False) for k1 in (0.9, 1.2, 1.5)
            for b in (0.4, 0.75, 0.9)]
    fb = FUSION_BM25
    if args.no_bm25_grid:
        grid = [(fb["stem"], fb["stopwords"] == "en", fb["k1"], fb["b"])]
    for stem, stop, k1, b in grid:
        bm25_cache[(stem, stop, k1, b)] = bm25_runs(corpus, qsets, stem, stop, k1, b)
        record("bm25", {"stem": stem, "stopwords": "en" if stop else "none", "k1": k1, "b": b},
               bm25_cache[(stem, stop, k1, b)])
    bm25_rows = [r for r in results if r["family"] == "bm25"]
    best_bm25 = max(bm25_rows, key=lambda r: r["train"]["ndcg@10"])["params"]
    lex = bm25_cache[(fb["stem"], fb["stopwords"] == "en", fb["k1"], fb["b"])]
    print("best bm25 on train:", best_bm25, "; fusion uses", fb, flush=True)

    # Dense and MRL
    doc_ids, dvecs = emb.corpus_embeddings({i: {"title": d.title, "text": d.text} for i, d in corpus.items()})
    all_q = {}
    for s in splits:
        all_q.update(splits[s].queries)
    qids_all, qvecs_all = emb.query_embeddings(all_q)
    qvec = dict(zip(qids_all, qvecs_all))
    doc_index = {d: i for i, d in enumerate(doc_ids)}
    dense: dict[str, Run] = {}
    for s, ds in splits.items():
        qids = list(ds.queries)
        dense[s] = dense_run(doc_ids, dvecs, qids, np.stack([qvec[q] for q in qids]))
    record("dense", {"dim": 384}, dense)
    for dim in (64, 128):
        coarse = {}
        for s, ds in splits.items():
            qids = list(ds.queries)
            coarse[s] = dense_run(doc_ids, dvecs, qids, np.stack([qvec[q] for q in qids]), dim=dim)
        record("mrl", {"dim": dim, "refine": None}, coarse)
        for n in (100, 200, 500, 1000):
            record("mrl", {"dim": dim, "refine": n}, {s: refine(coarse[s], doc_index, dvecs, qvec, n) for s in splits})

    # Bulk: every doc with cosine >= threshold (exact, full dimension): set recall, precision, count
    bulk_rows = []
    for s_name, ds in splits.items():
        qids = list(ds.queries)
        sims = np.stack([qvec[q] for q in qids]) @ dvecs.T
        for t in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6):
            rec, prec, cnt = [], [], []
            for r, qid in enumerate(qids):
                got = {doc_ids[j] for j in np.flatnonzero(sims[r] >= t)}
                rel = {d for d, g in ds.qrels[qid].items() if g > 0}
                rec.append(len(got & rel) / len(rel))
                prec.append(len(got & rel) / len(got) if got else 0.0)
                cnt.append(len(got))
            bulk_rows.append({"split": s_name, "threshold": t, "recall": round(float(np.mean(rec)), 4),
                              "precision": round(float(np.mean(prec)), 4), "returned_mean": round(float(np.mean(cnt)), 1),
                              "returned_p50": float(np.median(cnt)), "returned_max": int(np.max(cnt))})
            print("bulk", bulk_rows[-1], flush=True)

    # Fusion of dense (full dim) with FUSION_BM25 (the index service's BM25)
    for family, params, fn in fusion_grid():
        record(family, params, {s: fuse_run(dense[s], lex[s], fn) for s in splits})

    best = {}
    for fam in ("bm25", "mrl", "rrf", "wrrf", "convex"):
        rows = [r for r in results if r["family"] == fam]
        best[fam] = max(rows, key=lambda r: (r["train"]["ndcg@10"], r["train"]["recall@80"]))
    # Candidate window: first-stage recall at depths the reranker could read, for the chosen fusion
    chosen = best["convex"] if best["convex"]["train"]["ndcg@10"] >= best["rrf"]["train"]["ndcg@10"] else best["rrf"]
    fn = next(f for fam, p, f in fusion_grid() if fam == chosen["family"] and p == chosen["params"])
    window_rows = []
    for s_name, ds in splits.items():
        fused = fuse_run(dense[s_name], lex[s_name], fn)
        m = evaluate(fused, ds.qrels, (50, 80, 100, 120, 150, 200))
        window_rows.append({"split": s_name, "fusion": chosen["params"],
                            **{f"recall@{k}": round(m[f"recall@{k}"], 4) for k in (50, 80, 100, 120, 150, 200)}})
        print("window", window_rows[-1], flush=True)
    elapsed = time.perf_counter() - t_start
    OUT_JSON.write_text(json.dumps({"results": results, "best_on_train": best, "best_bm25": best_bm25, "bulk": bulk_rows, "windows": window_rows,
                                    "fusion_bm25": FUSION_BM25,
                                    "elapsed_s": round(elapsed, 1)}, indent=1))
    print(f"\nbest per family on TRAIN nDCG@10 (then recall@80); wrote {OUT_JSON} in {elapsed:.0f}s")
    print("| family | params | train nDCG@10 | train R@80 | test nDCG@10 | test MRR@10 | test R@10 | test R@80 | test R@100 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for fam, r in [("dense", next(r for r in results if r["family"] == "dense")), *best.items()]:
        t = r["test"]
        print(f"| {fam} | `{json.dumps(r['params'])}` | {r['train']['ndcg@10']:.4f} | {r['train']['recall@80']:.4f} | "
              f"{t['ndcg@10']:.4f} | {t['mrr@10']:.4f} | {t['recall@10']:.4f} | {t['recall@80']:.4f} | {t['recall@100']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
