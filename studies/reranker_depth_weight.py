"""Choose a trained cross-encoder's cascade depth and fusion weight together, on held-out TRAIN queries only.

`winnow train reranker` chooses w in w*z(CE) + (1-w)*z(first stage) over the first-stage top `--fusion-depth` of
its held-out training queries. This study asks whether scoring fewer candidates (a cascade cut: the reranker's
`cascade_depth` setting or a request's `rerank_depth`) does as well or better: the z-scores are then taken over a
shorter, cleaner list, and each query costs fewer pairs. The held-out queries are the ones the training run kept
out (same seed and count, read from the model's winnow_reranker.json), so nothing here touches the test split.

    python studies/reranker_depth_weight.py --model .winnow/models/scifact-ce --cache-dir ~/.cache/winnow/train
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

DATA = next((p / "shared" / "datasets" / "scifact" for p in Path(__file__).resolve().parents[1:4]
             if (p / "shared" / "datasets" / "scifact").is_dir()), Path("../shared/datasets/scifact"))
DEPTHS = (10, 20, 30, 40, 50, 60, 80)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, default=DATA)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "winnow" / "train")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    from winnow.models.loading import force_offline, set_threads

    force_offline()
    set_threads(args.threads)
    from winnow.ingest import document_text
    from winnow.models.encoder import SentenceTransformerEncoder
    from winnow.models.scorer import Candidate, CrossEncoderScorer
    from winnow.models.trained import read_manifest
    from winnow.train.first_stage import FirstStage
    from winnow.train.judgments import from_split, load_dataset_corpus
    from winnow.train.reranker import WEIGHTS, fused_ndcg, split_holdout

    trained = read_manifest(args.model)["trained"]
    corpus = load_dataset_corpus(args.dataset)
    queries = from_split(args.dataset, "train", corpus)
    _, held = split_holdout(queries, trained["mining"]["holdout"], trained["config"]["seed"])
    ids = list(corpus)
    texts = [document_text(d.title, d.text) for d in corpus.values()]
    fs = FirstStage(texts, SentenceTransformerEncoder(device="cpu"), cache_dir=args.cache_dir)
    hits = fs.search([q.text for q in held], depth=max(DEPTHS))
    scorer = CrossEncoderScorer(args.model, device="cpu", fusion_weight=1.0)  # raw scores; fusion done here
    runs = []
    for q, hs in zip(held, hits):
        top = hs[: max(DEPTHS)]
        cands = [Candidate(ids[h.row], texts[h.row], i + 1, h.score) for i, h in enumerate(top)]
        raw = np.array(scorer.forward(scorer.prepare(q.text, cands)))
        runs.append((dict(q.positives), [c.id for c in cands], raw, np.array([h.score for h in top])))
    table = {depth: {w: fused_ndcg(runs, w, depth) for w in WEIGHTS} for depth in DEPTHS}
    print(f"{len(runs)} held-out train queries; nDCG@10 by depth (rows) and w (columns); w=0 is the first stage")
    cols = [w for w in WEIGHTS if round(w * 20) % 2 == 0]
    print("depth " + " ".join(f"{w:>6.2f}" for w in cols) + "   best")
    for depth, row in table.items():
        best = max(row, key=lambda w: (row[w], -w))
        print(f"{depth:>5} " + " ".join(f"{row[w]:>6.4f}" for w in cols) + f"   w={best:.2f} {row[best]:.4f}")
    if args.json:
        args.json.write_text(json.dumps({str(d): {str(w): v for w, v in r.items()} for d, r in table.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
