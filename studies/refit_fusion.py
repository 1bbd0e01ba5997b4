"""Re-choose a trained cross-encoder's fusion weight and cascade depth on its own held-out TRAIN queries.

For a model directory written by an earlier `winnow train reranker` (before it chose the cascade depth too): the
held-out queries are re-drawn exactly as that run drew them (seed and count from its winnow_reranker.json), their
first-stage top `--fusion-depth` scored, and `fusion_weight` / `cascade_depth` chosen by the same code a training
run uses (`winnow.train.reranker.held_out_fusion`); the manifest is rewritten in place (atomically). The weights are
not touched; the test split is never read.

    python studies/refit_fusion.py --model .winnow/models/scifact-ce --dataset ../shared/datasets/scifact
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "winnow" / "train")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    from winnow.models.loading import force_offline, set_threads

    force_offline()
    set_threads(args.threads)
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from winnow.ingest import document_text
    from winnow.models.encoder import SentenceTransformerEncoder
    from winnow.models.trained import MANIFEST, read_manifest
    from winnow.train.first_stage import FirstStage
    from winnow.train.judgments import from_split, load_dataset_corpus
    from winnow.train.reranker import held_out_fusion, split_holdout

    manifest = read_manifest(args.model)
    trained = manifest["trained"]
    if trained["source"] != "split train":
        raise SystemExit(f"{args.model} was trained from {trained['source']!r}; only judged split runs are refit")
    corpus = load_dataset_corpus(args.dataset)
    queries = from_split(args.dataset, "train", corpus)
    _, held = split_holdout(queries, trained["mining"]["holdout"], trained["config"]["seed"])
    ids = list(corpus)
    texts = [document_text(d.title, d.text) for d in corpus.values()]
    fs = FirstStage(texts, SentenceTransformerEncoder(device="cpu"), cache_dir=args.cache_dir)
    hits = fs.search([q.text for q in held])
    tok = AutoTokenizer.from_pretrained(str(args.model), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(args.model), local_files_only=True).eval()
    with torch.inference_mode():
        fusion = held_out_fusion(tok, model, held, hits, ids, texts, manifest["max_length"],
                                 trained["mining"]["fusion_depth"])
    before = {k: manifest.get(k) for k in ("fusion_weight", "cascade_depth")}
    trained["fusion"] = fusion
    manifest.update(fusion_weight=fusion["fusion_weight"], cascade_depth=int(fusion.get("cascade_depth") or 0))
    tmp = args.model / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, default=str))
    os.replace(tmp, args.model / MANIFEST)
    print(json.dumps({"before": before, "after": {k: manifest[k] for k in before},
                      "held_out": {k: fusion[k] for k in ("first_stage_ndcg@10", "fused_ndcg@10", "fused_all_ndcg@10",
                                                          "ce_alone_ndcg@10", "held_out_queries")},
                      "by_depth": fusion["ndcg@10_by_depth"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
