"""Late interaction over stored token vectors: where the time of one 80-candidate rerank goes (in process).

    python studies/late_interaction_speed.py [--dataset DIR] [--queries 40] [--window 80] [--threads 2]

Every candidate's token vectors are computed once (cold pass, written to a TokenVectorStore in a temporary
directory, as the reranker does at ingest), then a fresh scorer is built on that store (as after a restart) and
each of `--queries` *new* test queries reranks one of the stored windows. Prints medians of the whole call and of
its parts: the query's forward pass, the stored-vector look-ups, MaxSim, and the fusion.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    from winnow.eval.beir import load_beir
    from winnow.models.encoder import SentenceTransformerEncoder
    from winnow.models.late_interaction import LateInteractionScorer, maxsim
    from winnow.models.loading import set_threads
    from winnow.models.scorer import Candidate
    from winnow.models.token_store import TokenVectorStore
    from winnow.ingest import document_text

    default = next((p / "shared" / "datasets" / "scifact" for p in ROOT.parents
                    if (p / "shared" / "datasets" / "scifact").is_dir()), None)
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default=str(default))
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--window", type=int, default=80)
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    set_threads(args.threads)

    ds = load_beir(args.dataset, "test")
    docs = [(i, document_text(d.title, d.text)) for i, d in list(ds.corpus.items())[: args.window * args.groups]]
    groups = [docs[g * args.window:(g + 1) * args.window] for g in range(args.groups)]
    queries = list(ds.queries.values())[: args.queries + 1]
    encoder = SentenceTransformerEncoder(device="cpu")

    def cands(group):
        return [Candidate(i, t, r + 1, 1.0 - r / 100) for r, (i, t) in enumerate(group)]

    with tempfile.TemporaryDirectory() as tmp:
        store = TokenVectorStore(tmp, encoder.model_id)
        cold = LateInteractionScorer(encoder, store=store)
        t = time.perf_counter()
        for g in groups:
            cold.score(queries[0], cands(g))
        cold_s = time.perf_counter() - t
        cold.close()
        scorer = LateInteractionScorer(encoder, store=TokenVectorStore(tmp, encoder.model_id))
        whole, qfwd, look, ms, fuse = [], [], [], [], []
        for n, q in enumerate(queries[1:]):
            c = cands(groups[n % len(groups)])
            t0 = time.perf_counter()
            scorer.score(q, c)
            whole.append(time.perf_counter() - t0)
            # the parts, on a query the scorer has not seen (its query cache would hide the forward pass)
            q2 = q + " ?"
            t0 = time.perf_counter()
            qv = scorer._query_vectors([q2])[q2]
            t1 = time.perf_counter()
            mats = [scorer._cached(k)[0] for k in (p.payload.key for p in scorer.prepare(q2, c))]
            t2 = time.perf_counter()
            raw = maxsim(qv, mats)
            t3 = time.perf_counter()
            scorer.finish(c, raw)
            t4 = time.perf_counter()
            qfwd.append(t1 - t0), look.append(t2 - t1), ms.append(t3 - t2), fuse.append(t4 - t3)

    def p(xs, q=50):
        xs = sorted(xs)
        return round(1000 * xs[min(len(xs) - 1, int(q / 100 * len(xs)))], 1)

    print(f"late interaction, {args.window} stored candidates, {len(whole)} new queries, {args.threads} threads")
    print(f"cold pass ({args.groups} x {args.window} computed and stored): {cold_s:.1f} s")
    print(f"{'part':<34} {'p50 ms':>8} {'p90 ms':>8}")
    for name, xs in (("whole score() call", whole), ("query forward pass", qfwd), ("stored look-ups + prepare", look),
                     ("maxsim", ms), ("fusion", fuse)):
        print(f"{name:<34} {p(xs):>8} {p(xs, 90):>8}")
    print(f"sum of parts p50: {round(sum(statistics.median(x) for x in (qfwd, look, ms, fuse)) * 1000, 1)} ms")


if __name__ == "__main__":
    main()
