"""SciFact test quality of cross-encoders trained by `winnow train reranker`, per stage, in process.

The end-to-end measurement is `winnow eval --reranker-model DIR` (the private cluster serves the model); this
script is its in-process twin for a machine too busy to re-embed the corpus for every model: it rebuilds the
cluster's first stage from the same parts (`winnow.train.first_stage.FirstStage`: the embedder's MiniLM, the
index's BM25, the gateway's convex fusion; one shard, exact search) from the corpus vectors that training cached,
then reranks each test query's first-stage top DEPTH with the reranker's own `CrossEncoderScorer` (so the fusion
weight is the one in the model's winnow_reranker.json, chosen on held-out TRAIN queries), candidates below DEPTH
keeping their first-stage order. Reports nDCG@10, MRR@10, recall@10/80/100 per stage and the scorer's time per
query (p50/p90, DEPTH pairs).

    python studies/trained_reranker_eval.py --model .winnow/models/scifact-ce [--model ...] --depth 30 \\
        --cache-dir .winnow/cache --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

# ../shared beside the checkout (main), or two levels up from a worktree under wt/
DATA = next((p / "shared" / "datasets" / "scifact" for p in Path(__file__).resolve().parents[1:4]
             if (p / "shared" / "datasets" / "scifact").is_dir()), Path("../shared/datasets/scifact"))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, default=DATA)
    p.add_argument("--split", default="test")
    p.add_argument("--model", type=Path, action="append", required=True)
    p.add_argument("--depth", type=int, default=80,
                   help="first-stage candidates the cross-encoder reranks (the window); a model directory whose "
                   "winnow_reranker.json names a cascade_depth is served on that many, as the reranker does.")
    p.add_argument("--queries", type=int, default=0, help="first N queries of the split only (0 = all).")
    p.add_argument("--max-seconds", type=float, default=0.0,
                   help="stop reranking after this long and report every stage on the queries done (0 = all).")
    p.add_argument("--cache-dir", type=Path, default=Path(".winnow/cache"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    from winnow.models.loading import force_offline, set_threads

    force_offline()
    set_threads(args.threads)
    from winnow.eval.beir import load_beir
    from winnow.eval.metrics import mean_metrics, per_query
    from winnow.ingest import document_text
    from winnow.models.encoder import SentenceTransformerEncoder
    from winnow.models.scorer import Candidate, CrossEncoderScorer
    from winnow.train.first_stage import FirstStage

    ds = load_beir(args.dataset, args.split)
    qids = list(ds.queries)[: args.queries or None]
    ids = list(ds.corpus)
    texts = [document_text(d.title, d.text) for d in ds.corpus.values()]
    fs = FirstStage(texts, SentenceTransformerEncoder(device="cpu"), cache_dir=args.cache_dir)
    t = time.perf_counter()
    hits = fs.search([ds.queries[q] for q in qids], depth=100)
    fs_ms = (time.perf_counter() - t) * 1000 / max(1, len(qids))
    qrels = {q: ds.qrels[q] for q in qids}
    first = {q: {ids[h.row]: float(100 - i) for i, h in enumerate(hs)} for q, hs in zip(qids, hits)}
    out = {"dataset": str(args.dataset), "split": args.split, "queries": len(qids), "depth": args.depth,
           "first_stage_ms_per_query": round(fs_ms, 1),
           "stages": {"first stage (hybrid, convex)": mean_metrics(per_query(first, qrels, (10, 80, 100)))}}
    print(json.dumps(out["stages"], indent=1), file=sys.stderr, flush=True)
    from winnow.models.trained import read_manifest, served_cascade_depth

    window = args.depth
    for model in args.model:
        scorer = CrossEncoderScorer(model, device="cpu")
        args.depth = min(window, served_cascade_depth(read_manifest(model), -1) or window)
        alone, fused, times = {}, {}, []
        began = time.perf_counter()
        for n, (q, hs) in enumerate(zip(qids, hits)):
            if args.max_seconds and time.perf_counter() - began > args.max_seconds:
                print(f"{model.name}: time is up after {n} queries", file=sys.stderr, flush=True)
                break
            top = hs[: args.depth]
            cands = [Candidate(ids[h.row], texts[h.row], i + 1, h.score) for i, h in enumerate(top)]
            t = time.perf_counter()
            raw = scorer.forward(scorer.prepare(ds.queries[q], cands))
            times.append((time.perf_counter() - t) * 1000)
            final = scorer.finish(cands, raw)
            rest = {ids[h.row]: -float(i) - 1e6 for i, h in enumerate(hs[args.depth :])}
            alone[q] = {**{c.id: float(s) for c, s in zip(cands, raw)}, **rest}
            fused[q] = {**{c.id: float(s) for c, s in zip(cands, final)}, **rest}
            if n % 25 == 0:
                print(f"{model.name}: {n + 1}/{len(qids)} queries, {statistics.median(times):.0f} ms/query",
                      file=sys.stderr, flush=True)
        name = f"{model.name} (w={scorer.weight:.2f})"
        done = {q: qrels[q] for q in alone}
        if len(done) < len(qids):
            sub = {q: first[q] for q in done}
            out["stages"][f"first stage on the {len(done)} queries {model.name} reached"] = mean_metrics(
                per_query(sub, done, (10, 80, 100)))
        qrels_m = done
        out["stages"][f"{name}: cross-encoder alone on top {args.depth}"] = mean_metrics(per_query(alone, qrels_m, (10, 80, 100)))
        out["stages"][f"{name}: fused (served) on top {args.depth}"] = mean_metrics(per_query(fused, qrels_m, (10, 80, 100)))
        qs = statistics.quantiles(times, n=10) if len(times) > 1 else times * 9
        out.setdefault("rerank_ms", {})[name] = {"p50": round(statistics.median(times), 1), "p90": round(qs[8], 1),
                                                 "pairs": args.depth, "max_length": scorer.max_length,
                                                 "queries": len(done)}
        print(json.dumps({k: v for k, v in out["stages"].items() if k.startswith(name)}, indent=1), file=sys.stderr,
              flush=True)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
