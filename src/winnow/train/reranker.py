"""`winnow train reranker` end to end: judged (or corpus-made) queries → first-stage hard negatives → a trained
cross-encoder, its first-stage fusion weight chosen on held-out training queries, written atomically.

The output directory is a standard Hugging Face sequence-classification directory (`CrossEncoder(dir)` and the
reranker's `scorer=cross-encoder` load it) plus `winnow_reranker.json`: how it was trained, the measured training
speed, and the fusion the reranker applies by default (`fusion_weight` w in w*z(CE) + (1-w)*z(first stage)).
Nothing is written to the output path until everything succeeded: the model goes to a temporary sibling
directory that is renamed into place at the end (and removed on any failure).
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from winnow.models.fusion import zscore
from winnow.models.trained import MANIFEST, read_manifest
from winnow.train.first_stage import FirstStage, Ranked
from winnow.train.judgments import JudgedQuery
from winnow.train.trainer import Example, TrainConfig, train

log = logging.getLogger(__name__)

WEIGHTS = [round(w, 2) for w in np.arange(0.0, 1.0001, 0.05)]
DEPTHS = (10, 20, 30, 40, 50, 60, 80, 100)  # cascade cuts tried with each weight (up to --fusion-depth)


@dataclass
class MiningConfig:
    """How hard negatives are mined from the first stage."""

    depth: int = 30  # negatives are drawn from the fused top `depth`
    guard: float = 0.95  # drop a candidate whose dense cosine >= guard * the positive's (likely unjudged relevant)
    holdout: int = 80  # training queries kept out of training to choose the fusion weight (0 = none)
    fusion_depth: int = 30  # first-stage candidates scored per held-out query


def mine_pool(hits: Sequence[Ranked], positives: set[int], judged_negatives: set[int], pos_dense: float,
              depth: int, guard: float) -> list[int]:
    """Rows usable as negatives: judged negatives first, then the fused top `depth` minus positives and minus
    candidates the dense model finds about as close as the positive (the false-negative guard)."""
    pool = [r for r in sorted(judged_negatives) if r not in positives]
    limit = guard * pos_dense if pos_dense > 0 else float("inf")
    for h in hits[:depth]:
        if h.row in positives or h.row in judged_negatives:
            continue
        if h.dense >= limit:
            continue
        pool.append(h.row)
    return pool


def split_holdout(queries: Sequence[JudgedQuery], n: int, seed: int) -> tuple[list[JudgedQuery], list[JudgedQuery]]:
    """(train, held out): `n` queries drawn by seed, never more than a fifth of them."""
    n = min(n, len(queries) // 5)
    if n <= 0:
        return list(queries), []
    held = set(random.Random(seed + 1).sample(range(len(queries)), n))
    return [q for i, q in enumerate(queries) if i not in held], [q for i, q in enumerate(queries) if i in held]


def judged_examples(queries: Sequence[JudgedQuery], doc_rows: dict[str, int], texts: Sequence[str],
                    hits: Sequence[Sequence[Ranked]], vectors: np.ndarray, qvecs: np.ndarray,
                    mining: MiningConfig) -> list[Example]:
    """One example per (query, relevant document), negatives from that query's first-stage list."""
    out = []
    for q, qhits, qv in zip(queries, hits, qvecs):
        pos = {doc_rows[d] for d in q.positives}
        neg = {doc_rows[d] for d in q.negatives if d in doc_rows}
        pos_dense = min(float(vectors[r] @ qv) for r in pos)
        pool = tuple(texts[r] for r in mine_pool(qhits, pos, neg, pos_dense, mining.depth, mining.guard))
        for r in sorted(pos):
            out.append(Example(q.text, texts[r], pool))
    return out


def score_texts(tokenizer, model, query: str, texts: Sequence[str], max_length: int, batch_size: int = 32,
                bf16: str = "auto") -> list[float]:
    """Cross-encoder logits of (query, text) pairs, in length-sorted batches (bf16 autocast as the server runs it)."""
    import torch

    from winnow.models.loading import Placement, use_cpu_bf16

    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    scores = [0.0] * len(texts)
    device = next(model.parameters()).device
    autocast = use_cpu_bf16(Placement(device.type, "float32"), bf16)
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        feats = tokenizer([query] * len(idx), [texts[i] for i in idx], truncation="longest_first",
                          max_length=max_length, padding=True, return_tensors="pt").to(device)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(**feats).logits.float()[:, 0].cpu().tolist()
        for i, s in zip(idx, logits):
            scores[i] = s
    return scores


def fused_ndcg(runs, w: float, depth: int) -> float:
    """Mean nDCG@10 when the cross-encoder scores each query's first-stage top `depth` (fused with weight w, z over
    those `depth`) and the rest keep their first-stage order below them."""
    from winnow.eval.metrics import ndcg_at_k

    total = 0.0
    for rels, ids, ce, fs in runs:
        d = min(depth, len(ids))
        head = w * zscore(ce[:d]) + (1 - w) * zscore(fs[:d])
        order = sorted(range(d), key=lambda i: (-head[i], i)) + list(range(d, len(ids)))
        total += ndcg_at_k([ids[i] for i in order], rels, 10)
    return round(total / max(1, len(runs)), 4)


def choose_weight(runs: Sequence[tuple[dict[str, int], list[str], np.ndarray, np.ndarray]]) -> dict:
    """Grid-search the fusion weight w in w*z(CE) + (1-w)*z(first stage) and the cascade depth (how many of the
    first stage's top candidates the cross-encoder scores) for nDCG@10 over held-out queries.

    `runs`: per query (qrels, candidate ids in first-stage order, CE scores, first-stage scores). Ties go to the
    smaller w (trust the first stage unless the cross-encoder earns it), then to the smaller depth (cheaper). The
    largest depth tried is every candidate scored; choosing it records cascade_depth 0 (score all)."""
    full = max((len(r[1]) for r in runs), default=0)
    depths = sorted({d for d in DEPTHS if d < full} | {full}) if full else [0]
    table = {d: {w: fused_ndcg(runs, w, d) for w in WEIGHTS} for d in depths}
    depth, best = max(((d, w) for d in depths for w in WEIGHTS), key=lambda dw: (table[dw[0]][dw[1]], -dw[1], -dw[0]))
    return {"fusion_weight": best, "cascade_depth": 0 if depth == full else depth,
            "ndcg@10_by_weight": {str(k): v for k, v in table[full].items()},
            "ndcg@10_by_depth": {str(d): {"best_w": max(WEIGHTS, key=lambda w: (table[d][w], -w)),
                                          "ndcg@10": max(table[d].values())} for d in depths},
            "first_stage_ndcg@10": table[full][0.0], "fused_ndcg@10": table[depth][best],
            "fused_all_ndcg@10": max(table[full].values()), "ce_alone_ndcg@10": table[full][1.0]}


@dataclass
class RunResult:
    """What a training run did, written to the manifest."""

    source: str
    base_model: str
    train_queries: int
    examples: int
    config: dict
    mining: dict
    training: dict
    fusion: dict = field(default_factory=dict)
    timings_s: dict = field(default_factory=dict)


def write_atomically(out: Path, tokenizer, model, manifest: dict, overwrite: bool) -> None:
    """Save into a temporary sibling, then rename onto `out` (replacing it only with overwrite)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"output directory {out} exists; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def held_out_fusion(tokenizer, model, held: Sequence[JudgedQuery], hits: Sequence[Sequence[Ranked]],
                    ids: Sequence[str], texts: Sequence[str], max_length: int, depth: int,
                    progress: Callable[[int], None] | None = None) -> dict:
    """Score each held-out query's first-stage top `depth` and choose the fusion weight on them."""
    runs = []
    for q, qhits in zip(held, hits):
        top = list(qhits[:depth])
        ce = score_texts(tokenizer, model, q.text, [texts[h.row] for h in top], max_length)
        rels = dict(q.positives)
        runs.append((rels, [ids[h.row] for h in top], np.array(ce), np.array([h.score for h in top])))
        if progress is not None:
            progress(1)
    result = choose_weight(runs)
    result["held_out_queries"] = len(runs)
    result["depth"] = depth
    return result


def manifest_of(result: RunResult) -> dict:
    return {"format": 1, "scorer": "cross-encoder", "fusion": "linear-score",
            "fusion_weight": result.fusion.get("fusion_weight"), "max_length": result.config.get("max_length"),
            "cascade_depth": int(result.fusion.get("cascade_depth") or 0),
            "trained": asdict(result), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


__all__ = ["MANIFEST", "MiningConfig", "RunResult", "TrainConfig", "FirstStage", "choose_weight", "fused_ndcg",
           "held_out_fusion", "judged_examples", "manifest_of", "mine_pool", "read_manifest", "score_texts", "split_holdout", "train",
           "write_atomically"]
