"""Re-tune the late-interaction reranker's fusion against the gateway's convex first stage (SciFact, train only).

The gateway's hybrid first stage is `fusion.convex`: 0.5 * z(dense cosine) + 0.5 * z(BM25), each list being the
top-80 after merging (a doc missing from a list gets that list's lowest z), fused window 80. This script rebuilds
exactly that in process, calling the gateway's own `convex()` on the same inputs:
  - dense: cached all-MiniLM-L6-v2 vectors (studies/scifact_embeddings.py; title + " " + text, 256 tokens), exact
    inner product, top-80;
  - BM25: bm25s (lucene, k1 1.5, b 0.75) with the PyStemmer English stemmer and English stopwords over
    title + " " + text, top-80 with score > 0 (as the index service; one shard, so global IDF).
Every candidate then gets MaxSim (the service's `maxsim`, all tokens, query/document token vectors from the
study's cache) and two fusions are searched on TRAIN, w in 0..1 step 0.05:
  - linear (rank): w * z(MaxSim) + (1 - w) * z(1 / (k + first-stage rank)), k in a grid (the current default);
  - linear-score: w * z(MaxSim) + (1 - w) * z(first-stage score) (the convex fused score).
w = 0 is the first stage itself, so the train optimum is never below it. The best of each family on train is then
reported on TEST with the first stage alone and the old default (linear, w 0.4, k 100), plus a paired bootstrap
and a 5-fold cross-validation on train of each family.

Run: `.venv/bin/python studies/reranker_retune.py [--json out.json]` (needs /tmp/winnow-research/ from
studies/scifact_embeddings.py and `studies/reranker_study.py --stage encode`; ~3-5 min on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling bench module, run as a script

import reranker_study as rs  # noqa: E402

from winnow.models.late_interaction import linear_fuse, linear_score_fuse, maxsim  # noqa: E402
from winnow.services.gateway.fusion import convex  # noqa: E402
from winnow.services.gateway.model import Candidate  # noqa: E402

WINDOW = 80
ALPHA = 0.5
WS = [round(float(w), 2) for w in np.arange(0.0, 1.0001, 0.05)]
KS = (1, 5, 10, 20, 30, 60, 100, 200, 500)
OLD_DEFAULT = ("linear", 0.4, 100.0)


def first_stages(cache: Path, splits: dict[str, list[str]], qtexts: dict[str, list[str]]) -> dict[str, list]:
    """Per split, per query: the gateway's convex top-80 as [(corpus row, first-stage rank, first-stage score)]."""
    import bm25s
    import Stemmer

    ids, texts = rs.load_corpus()
    row_of = {d: i for i, d in enumerate(ids)}
    emb_ids = json.loads((cache / "scifact_minilm_title_text_256.ids.json").read_text())
    docs = np.load(cache / "scifact_minilm_title_text_256.npy")
    q_ids = json.loads((cache / "scifact_minilm_queries_256.ids.json").read_text())
    qmat = np.load(cache / "scifact_minilm_queries_256.npy")
    q_row = {q: i for i, q in enumerate(q_ids)}
    stemmer = Stemmer.Stemmer("english")
    tok = lambda xs: bm25s.tokenize(xs, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)  # noqa: E731
    retriever = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    retriever.index(tok(texts), show_progress=False)
    out = {}
    for split, qids in splits.items():
        bm_rows, bm_scores = retriever.retrieve(tok(qtexts[split]), k=WINDOW, show_progress=False, n_threads=1)
        sims = qmat[[q_row[q] for q in qids]] @ docs.T
        per_query = []
        for qi in range(len(qids)):
            top = np.argsort(-sims[qi], kind="stable")[:WINDOW]
            dense = sorted(((float(sims[qi, j]), emb_ids[j]) for j in top), key=lambda t: (-t[0], t[1]))
            lex = sorted(((float(s), ids[r]) for r, s in zip(bm_rows[qi], bm_scores[qi]) if s > 0),
                         key=lambda t: (-t[0], t[1]))
            fused = convex([Candidate(id=d, dense_score=s) for s, d in dense],
                           [Candidate(id=d, lexical_score=s) for s, d in lex], alpha=ALPHA, window=WINDOW)
            per_query.append([(row_of[c.id], c.first_stage_rank, c.first_stage_score) for c in fused])
        out[split] = per_query
    return out


def maxsims(cache: Path, fs: list, qtexts: list[str]) -> list[np.ndarray]:
    """MaxSim (all tokens, the service default) of each query against its candidates."""
    _, qtok, _ = rs.encode_queries(qtexts)
    corpus = np.load(cache / "corpus_tokens.npz")
    tok, offsets = corpus["tok"], corpus["offsets"]
    return [maxsim(qtok[qi], [tok[offsets[r] : offsets[r + 1]] for r, _, _ in cands]) for qi, cands in enumerate(fs)]


def orders(fs: list, ms: list[np.ndarray], ids: list[str], fusion: str, w: float, k: float) -> list[list[str]]:
    """Reranked doc ids per query, sorted as the service does (score desc, then first-stage rank)."""
    out = []
    for cands, m in zip(fs, ms):
        ranks = [r for _, r, _ in cands]
        if fusion == "first-stage":
            s = [-float(r) for r in ranks]
        elif fusion == "linear":
            s = linear_fuse(m.tolist(), ranks, w, k)
        else:
            s = linear_score_fuse(m.tolist(), ranks, w, k, [x for _, _, x in cands])
        out.append([ids[cands[i][0]] for i in sorted(range(len(cands)), key=lambda i: (-s[i], ranks[i]))])
    return out


def service_path(cache: Path, fs: list, qids: list[str], qtexts: list[str], qrels: dict) -> float:
    """Test nDCG@10 of the service's scorer with its DEFAULT settings (LateInteractionScorer.score, candidates
    carrying first_stage_rank and first_stage_score as the gateway sends them), its document cache seeded from the
    cached token vectors so nothing is re-encoded; queries are encoded by the scorer."""
    from winnow.models.encoder import SentenceTransformerEncoder
    from winnow.models.late_interaction import LateInteractionScorer, text_key
    from winnow.models.scorer import Candidate

    ids, texts = rs.load_corpus()
    corpus = np.load(cache / "corpus_tokens.npz")
    tok, offsets = corpus["tok"], corpus["offsets"]
    scorer = LateInteractionScorer(SentenceTransformerEncoder(device="cpu"))
    ords = []
    for cands in fs:
        for row, _, _ in cands:
            scorer.cache.put(text_key(ids[row], texts[row]), tok[offsets[row] : offsets[row + 1]], False)
        rc = [Candidate(ids[row], texts[row], r, s) for row, r, s in cands]
        scores = scorer.score(qtexts[len(ords)], rc)
        ords.append([rc[i].id for i in sorted(range(len(rc)), key=lambda i: (-scores[i], rc[i].first_stage_rank))])
    print(f"service default: {scorer.name} w={scorer.weight}", flush=True)
    return float(ndcgs(ords, qids, qrels).mean())


def ndcgs(ords: list[list[str]], qids: list[str], qrels: dict[str, set[str]]) -> np.ndarray:
    return np.array([rs.ndcg10(o, qrels[q]) for o, q in zip(ords, qids)])


def paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """a - b per query: wins, losses, mean, 95% bootstrap interval."""
    d = a - b
    rng = np.random.default_rng(0)
    boot = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(2000)]
    return {"wins": int((d > 1e-9).sum()), "losses": int((d < -1e-9).sum()), "mean": round(float(d.mean()), 4),
            "ci95": [round(float(np.percentile(boot, 2.5)), 4), round(float(np.percentile(boot, 97.5)), 4)]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", default="/tmp/winnow-research")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default="", help="also write the report here")
    p.add_argument("--service", action="store_true", help="also run the service's default scorer end to end on test")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    cache = Path(a.cache)
    t0 = time.time()
    ids, _ = rs.load_corpus()
    data = {s: rs.load_queries(s) for s in ("train", "test")}
    fs = first_stages(cache, {s: d[0] for s, d in data.items()}, {s: d[1] for s, d in data.items()})
    ms = {s: maxsims(cache, fs[s], data[s][1]) for s in data}
    print(f"first stage + MaxSim in {time.time() - t0:.0f}s", flush=True)
    nd = lambda s, f, w, k: ndcgs(orders(fs[s], ms[s], ids, f, w, k), data[s][0], data[s][2])  # noqa: E731
    grid: dict[str, float] = {}
    best: dict[str, tuple[float, float, float]] = {}
    for fusion, ks in (("linear", KS), ("linear-score", (0.0,))):
        for k in ks:
            for w in WS:
                r = float(nd("train", fusion, w, k).mean())
                grid[f"{fusion} w={w} k={k:g}"] = round(r, 4)
                if fusion not in best or r > best[fusion][0] + 1e-12:
                    best[fusion] = (r, w, k)
    # 5-fold cross-validation on train only: tune w (and k) on 4 folds, score the 5th (a test-free comparison)
    tr_nd = {(f, w, k): nd("train", f, w, k) for f, ks in (("linear", KS), ("linear-score", (0.0,)))
             for k in ks for w in WS}
    parts = np.array_split(np.random.default_rng(0).permutation(len(data["train"][0])), 5)
    cv = {}
    for fam in ("linear", "linear-score"):
        held = []
        for f in range(5):
            fit = np.concatenate([parts[g] for g in range(5) if g != f])
            cfg = max((c for c in tr_nd if c[0] == fam), key=lambda c: (tr_nd[c][fit].mean(), -c[1]))
            held.extend(tr_nd[cfg][parts[f]].tolist())
        cv[fam] = round(float(np.mean(held)), 4)
    rows = {"convex first stage": ("first-stage", 0.0, 0.0), "old default (linear w=0.4 k=100)": OLD_DEFAULT}
    for fusion, (_, w, k) in best.items():
        rows[f"{fusion} best on train (w={w}" + (f", k={k:g})" if fusion == "linear" else ")")] = (fusion, w, k)
    report: dict = {"table": {}, "chosen_on_train": {f: {"train": round(b[0], 4), "w": b[1], "k": b[2]}
                                                     for f, b in best.items()}}
    per_q = {}
    print(f"{'method':<44} {'train nDCG@10':>13} {'test nDCG@10':>12}")
    for name, (f, w, k) in rows.items():
        tr, te = nd("train", f, w, k), nd("test", f, w, k)
        per_q[name] = te
        report["table"][name] = {"train": round(float(tr.mean()), 4), "test": round(float(te.mean()), 4)}
        print(f"{name:<44} {tr.mean():>13.4f} {te.mean():>12.4f}")
    report["train_5fold_cv_ndcg@10"] = cv
    if a.service:
        report["service_default_test_ndcg@10"] = round(service_path(cache, fs["test"], *data["test"]), 4)
    base = per_q["convex first stage"]
    report["test_vs_first_stage"] = {n: paired(v, base) for n, v in per_q.items() if n != "convex first stage"}
    print(json.dumps({k: v for k, v in report.items() if k != "table"}, indent=1))
    if a.json:
        report["grid_train_ndcg@10"] = grid
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
