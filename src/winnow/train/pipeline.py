"""The judged-queries run of `winnow train reranker` (split or judgments file): mine, train, choose w, write."""

from __future__ import annotations

import logging
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

log = logging.getLogger(__name__)


def build_first_stage(args, texts: list[str], bars):
    from winnow.models.encoder import SentenceTransformerEncoder
    from winnow.models.loading import set_threads
    from winnow.train.first_stage import FirstStage

    set_threads(args.threads)
    encoder = SentenceTransformerEncoder(args.first_stage_model, device=args.device)
    return FirstStage(texts, encoder, cache_dir=args.cache_dir, progress=bars)


def train_config(args):
    from winnow.train.trainer import TrainConfig

    return TrainConfig(epochs=args.epochs, lr=args.lr, negatives=args.negatives,
                       groups_per_batch=args.groups_per_batch, max_length=args.max_length, seed=args.seed,
                       time_budget_s=args.time_budget, device=args.device, threads=args.threads,
                       bf16=getattr(args, "bf16", "auto"))


def finish(args, tokenizer, model, result, bars, held_fn, t0: float) -> int:
    """Choose the fusion weight (held_fn), write the directory atomically, print the summary."""
    from winnow.train.reranker import manifest_of, write_atomically

    started = time.perf_counter()
    if held_fn is not None:
        result.fusion = held_fn()
    else:
        result.fusion = {"fusion_weight": 0.3, "note": "no held-out queries: the reranker's default weight"}
    result.timings_s["fusion"] = round(time.perf_counter() - started, 1)
    result.timings_s["total"] = round(time.perf_counter() - t0, 1)
    write_atomically(args.out, tokenizer, model, manifest_of(result), args.overwrite)
    tr = result.training
    f = result.fusion
    print(f"trained {args.out}: {tr['steps']} steps, {tr['pairs']} pairs in {tr['seconds']:.0f}s "
          f"({tr['pairs_per_s']:.1f} pairs/s), loss {tr['final_loss']:.3f}"
          + (f" (the time budget fit {tr['steps']} of {tr['steps_asked']} steps)" if tr["stopped_by_budget"] else ""),
          file=sys.stderr)
    if "first_stage_ndcg@10" in f:
        cut = f"top {f['cascade_depth']}" if f.get("cascade_depth") else f"all {f['depth']}"
        print(f"held-out {f['held_out_queries']} queries: first stage nDCG@10 {f['first_stage_ndcg@10']:.4f}, "
              f"cross-encoder alone {f['ce_alone_ndcg@10']:.4f}, fused w={f['fusion_weight']} on the {cut} "
              f"candidates {f['fused_ndcg@10']:.4f}", file=sys.stderr)
    print(str(args.out))
    return 0


def run_judged(args, corpus, queries, source: str, base: Path, bars, t0: float) -> int:
    import torch

    from winnow.ingest import document_text
    from winnow.train.reranker import MiningConfig, RunResult, held_out_fusion, judged_examples, split_holdout
    from winnow.train.first_stage import encode_sorted
    from winnow.train.trainer import train

    ids = list(corpus)
    texts = [document_text(d.title, d.text) for d in corpus.values()]
    rows = {d: i for i, d in enumerate(ids)}
    if args.max_queries and len(queries) > args.max_queries:
        queries = random.Random(args.seed).sample(queries, args.max_queries)
    mining = MiningConfig(depth=args.depth, holdout=args.holdout, fusion_depth=args.fusion_depth)
    train_q, held = split_holdout(queries, mining.holdout, args.seed)
    timings = {}
    started = time.perf_counter()
    fs = build_first_stage(args, texts, bars)
    timings["first_stage_index"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    hits = fs.search([q.text for q in train_q], progress=bars("mine negatives", len(train_q)))
    held_hits = fs.search([q.text for q in held]) if held else []
    qvecs = encode_sorted(fs.encoder, [q.text for q in train_q], "query")
    examples = judged_examples(train_q, rows, texts, hits, fs.vectors, qvecs, mining)
    timings["mine"] = round(time.perf_counter() - started, 1)
    del fs.encoder
    config = train_config(args)
    log.info("training on %d examples from %d queries (%s), %d held out", len(examples), len(train_q), source,
             len(held))
    tokenizer, model, report = train(examples, base, config, progress=lambda n: bars("train", n))
    timings["train"] = report.seconds
    result = RunResult(source=source, base_model=str(base), train_queries=len(train_q), examples=len(examples),
                       config=asdict(config), mining=asdict(mining), training=asdict(report), timings_s=timings)
    held_fn = None
    if held:
        def held_fn():
            with torch.inference_mode():
                return held_out_fusion(tokenizer, model, held, held_hits, ids, texts, config.max_length,
                                       mining.fusion_depth, bars("choose fusion", len(held)))
    return finish(args, tokenizer, model, result, bars, held_fn, t0)
