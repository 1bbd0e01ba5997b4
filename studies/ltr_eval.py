"""SciFact test quality of the LTR stage, in process: first stage / reranker as served / LTR (linear, LightGBM).

The end-to-end measurement is `winnow eval --reranker-model CE --ltr-model FILE --window DEPTH` (the private
cluster serves both); this is its in-process twin, built from the code `winnow train ltr` and the gateway run:
the cluster's first stage rebuilt by `FirstStage.candidates` (MiniLM vectors cached by training, the index's BM25,
the gateway's convex fusion, lists cut to the window DEPTH), the reranker's `CrossEncoderScorer` (its served
`finish()` score, fused as its winnow_reranker.json says), and `winnow.train.ltr` / `ltr_fit` for the windows,
features and model choice. Training uses the TRAIN split only (the models are chosen on held-out train queries,
the cross-encoder's own held-out ones when its manifest names them); the test split is scored once at the end.

Every stage reorders the same DEPTH candidates per query, so R@DEPTH is the same for all. Scored windows are
cached (`--cache-dir`), so re-running with other models (`--model FILE`, e.g. the output of `winnow train ltr`)
costs no cross-encoder time.

    python studies/ltr_eval.py --reranker-model .winnow/models/scifact-ce --depth 30 --cascade-depth 0 \\
        --json out.json [--model scifact-ltr.json] [--out-dir models/]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

DATA = next((p / "shared" / "datasets" / "scifact" for p in Path(__file__).resolve().parents[1:4]
             if (p / "shared" / "datasets" / "scifact").is_dir()), Path("../shared/datasets/scifact"))
FIELDS = ("id", "dense_score", "lexical_score", "dense_rank", "lexical_rank", "first_stage_rank",
          "first_stage_score", "rerank_score")


def windows(args, split: str, fs, core, ids, texts, cache: Path):
    """(judged queries, their scored windows) of a split, from the cache when this exact setup was scored."""
    from winnow.services.gateway.model import Candidate
    from winnow.train.judgments import from_split, load_dataset_corpus
    from winnow.train.ltr import window_candidates

    queries = from_split(args.dataset, split, load_dataset_corpus(args.dataset))
    key = hashlib.sha256(json.dumps([str(args.dataset), split, args.depth, fs.encoder.model_id,
                                     core.scorer.model_id if core else "", core.scorer_name if core else "",
                                     [q.id for q in queries]]).encode()).hexdigest()[:16]
    path = cache / f"windows-{split}-{key}.json"
    rows = {d: i for i, d in enumerate(ids)}
    if path.is_file():
        data = json.loads(path.read_text())
        lists = [[Candidate(**c, text=texts[rows[c["id"]]]) for c in w] for w in data["windows"]]
        print(f"{split}: {len(lists)} windows from {path}", file=sys.stderr, flush=True)
        return queries, lists, data["seconds"]
    started = time.perf_counter()
    done = [0]

    def progress(n):
        done[0] += n
        if done[0] % 50 == 0:
            el = time.perf_counter() - started
            print(f"{split}: {done[0]}/{len(queries)} windows, {el:.0f}s", file=sys.stderr, flush=True)

    lists = window_candidates(fs, [q.text for q in queries], ids, texts, args.depth, core, progress=progress)
    seconds = round(time.perf_counter() - started, 1)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seconds": seconds, "windows": [
        [{f: getattr(c, f) for f in FIELDS} for c in w] for w in lists]}))
    return queries, lists, seconds


def run_of(queries, lists, score) -> dict[str, dict[str, float]]:
    """A TREC-style run: per query, doc id -> a score that orders the window (ties by first-stage rank)."""
    from winnow.train.ltr_fit import order

    run = {}
    for q, w in zip(queries, lists):
        s = np.asarray(score(w), dtype=float)
        ranks = np.array([c.first_stage_rank for c in w])
        run[q.id] = {w[i].id: float(len(w) - pos) for pos, i in enumerate(order(s, ranks))}
    return run


def paired(a: dict, b: dict, seed: int = 0, n: int = 2000) -> dict:
    """b - a per query (nDCG@10): mean, wins/losses, 95% paired bootstrap interval."""
    qs = sorted(a)
    d = np.array([b[q]["ndcg@10"] - a[q]["ndcg@10"] for q in qs])
    rng = np.random.default_rng(seed)
    boots = np.sort([d[rng.integers(0, d.size, d.size)].mean() for _ in range(n)])
    return {"mean": round(float(d.mean()), 4), "wins": int((d > 0).sum()), "losses": int((d < 0).sum()),
            "ci95": [round(float(boots[int(0.025 * n)]), 4), round(float(boots[int(0.975 * n) - 1]), 4)]}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, default=DATA)
    p.add_argument("--reranker-model", type=Path, default=None)
    p.add_argument("--depth", type=int, default=30)
    p.add_argument("--cascade-depth", type=int, default=-1,
                   help="the reranker's cascade_depth setting: -1 = the model directory's own, 0 = the whole window.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout", type=int, default=80)
    p.add_argument("--model", type=Path, action="append", default=[], help="an LTR file to score on test too.")
    p.add_argument("--out-dir", type=Path, default=None, help="write the study's LTR files here.")
    p.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "winnow" / "train")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    from winnow.models.loading import force_offline, set_threads

    force_offline()
    set_threads(args.threads)
    from winnow.eval.metrics import mean_metrics, per_query
    from winnow.ingest import document_text
    from winnow.models import ltr
    from winnow.models.encoder import SentenceTransformerEncoder
    from winnow.train.first_stage import FirstStage
    from winnow.train.judgments import load_dataset_corpus
    from winnow.train.ltr import features_for, groups_of, reranker_held_out, served_reranker
    from winnow.train.ltr_fit import choose
    from winnow.train.reranker import split_holdout

    corpus = load_dataset_corpus(args.dataset)
    ids = list(corpus)
    texts = [document_text(d.title, d.text) for d in corpus.values()]
    fs = FirstStage(texts, SentenceTransformerEncoder(device="cpu"), cache_dir=args.cache_dir)
    scorer = served_name = None
    if args.reranker_model is not None:
        from winnow.models.scorer import CrossEncoderScorer

        scorer = CrossEncoderScorer(args.reranker_model, device="cpu")
        served_name = served_reranker(scorer, args.cascade_depth, args.reranker_model).scorer_name
    cache = args.cache_dir / "ltr-study"
    # a fresh core per split: window_candidates runs it in its own event loop and closes it
    core = lambda: served_reranker(scorer, args.cascade_depth, args.reranker_model) if scorer else None  # noqa: E731
    train_q, train_w, train_s = windows(args, "train", fs, core(), ids, texts, cache)
    test_q, test_w, test_s = windows(args, "test", fs, core(), ids, texts, cache)
    features = features_for(scorer is not None, [])
    held = None
    if scorer is not None:
        from winnow.models.trained import read_manifest

        held = reranker_held_out(read_manifest(args.reranker_model), train_q, "split train")
    how = "the reranker's held-out queries" if held is not None else "drawn by seed"
    if held is None:
        _, held = split_holdout(train_q, args.holdout, args.seed)
    held_ids = {q.id for q in held}
    groups = dict(zip([q.id for q in train_q], groups_of(train_q, train_w, features)))
    fit_g = [groups[q.id] for q in train_q if q.id not in held_ids]
    held_g = [groups[q.id] for q in train_q if q.id in held_ids]
    kinds = ["linear"] + (["lightgbm"] if ltr.lightgbm_available() else [])
    models = {}
    for name, ks in [("chosen (linear or LightGBM)", kinds), *((f"{k} only", [k]) for k in kinds)]:
        m = choose(fit_g, held_g, features, args.depth, args.seed, ks, threads=1)
        models[f"LTR, {name}: {m.label} ({m.report['chosen']})"] = m
        if args.out_dir is not None:
            args.out_dir.mkdir(parents=True, exist_ok=True)
            ltr.save(m, args.out_dir / f"scifact-ltr-{name.split()[0]}.json", overwrite=True)
    for path in args.model:
        m = ltr.load(path)
        models[f"LTR file {path.name}: {m.label} ({m.report.get('chosen')})"] = m

    qrels = {q.id: {**{d: 0 for d in q.negatives}, **q.positives} for q in test_q}
    ks = (1, 5, 10, args.depth)
    stages = {"first stage (convex, lists of %d)" % args.depth: run_of(test_q, test_w, lambda w: [
        -c.first_stage_rank for c in w])}
    if scorer is not None:
        stages[f"reranker as served ({scorer.model_id} / {served_name})"] = run_of(
            test_q, test_w, lambda w: [c.rerank_score for c in w])
    for name, m in models.items():
        stages[name] = run_of(test_q, test_w, m.score)
    per = {name: per_query(run, qrels, ks) for name, run in stages.items()}
    base = list(per)[1 if scorer is not None else 0]
    keep = ("ndcg@10", "mrr@10", "recall@5", "recall@10", f"recall@{args.depth}")
    out = {"dataset": str(args.dataset), "depth": args.depth, "train_queries": len(train_q),
           "fit_queries": len(fit_g), "held_out_queries": len(held_g), "held_out_from": how,
           "test_queries": len(test_q), "features": list(features),
           "scoring_seconds": {"train": train_s, "test": test_s},
           "test": {name: {k: round(v, 4) for k, v in mean_metrics(pq).items() if k in keep}
                    for name, pq in per.items()},
           f"test vs {base}": {name: paired(per[base], pq) for name, pq in per.items() if name != base},
           "selection": {name: m.report for name, m in models.items()}}
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
