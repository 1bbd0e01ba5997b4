"""Cross-encoder rerank latency for one request of N candidates, per inference option, on this machine.

Options compared in the same run (ratios are what to read on a shared machine): the old path (one forward over the
whole window padded to its longest pair) against length-sorted sub-batches, max_length 256 / 192 / 128, and bf16
autocast on CPU. Candidates are SciFact documents (title + text), the query a SciFact claim.

    python studies/cross_encoder_speed.py --model MODEL_DIR [--n 80] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import gzip
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
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--dataset", type=Path, default=DATA)
    p.add_argument("--n", type=int, default=80)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--configs", default="whole-256,sorted16-256,sorted16-256-bf16,sorted16-192,sorted16-128")
    args = p.parse_args(argv)
    from winnow.models.loading import force_offline, set_threads

    force_offline()
    set_threads(args.threads)
    from winnow.models.loading import cpu_has_bf16
    from winnow.models.scorer import Candidate, CrossEncoderScorer

    with gzip.open(args.dataset / "corpus.jsonl.gz", "rt") as fh:
        docs = [json.loads(line) for _, line in zip(range(args.n), fh)]
    cands = [Candidate(d["_id"], f"{d['title']} {d['text']}".strip(), i + 1, 1.0 / (i + 1)) for i, d in enumerate(docs)]
    query = "Vitamin D deficiency is associated with an increased risk of cardiovascular disease."
    rows = []
    for name in args.configs.split(","):
        parts = name.split("-")
        length = int(parts[1])
        sub = args.n if parts[0] == "whole" else int(parts[0].removeprefix("sorted"))
        scorer = CrossEncoderScorer(args.model, device="cpu", max_length=length, sub_batch=sub,
                                    bf16="on" if "bf16" in parts else "off")
        pairs = scorer.prepare(query, cands)
        scorer.forward(pairs[:4])  # warm
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            scorer.forward(pairs)
            times.append((time.perf_counter() - t) * 1000)
        rows.append((name, statistics.median(times), min(times)))
        print(f"{name}: p50 {rows[-1][1]:.0f} ms, min {rows[-1][2]:.0f} ms", file=sys.stderr, flush=True)
    base = rows[0][1]
    print(f"cpu native bf16: {cpu_has_bf16()} · {args.n} candidates · {args.threads} threads · {args.repeats} repeats")
    print("| option | p50 ms | min ms | p50 vs first |")
    print("|---|---|---|---|")
    for name, med, low in rows:
        print(f"| {name} | {med:.0f} | {low:.0f} | {med / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
