"""How a reranker's own score joins the first stage's, per request: the fusions both scorers offer
(late interaction over MaxSim, the cross-encoder over its logits). Pure numpy; z-scores are taken over the
request's candidates. The choice and weights are measured in docs/models.md."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rrf_fuse(own: Sequence[float], first_stage_ranks: Sequence[int], weight: float, k: float) -> list[float]:
    """weight/(k + rank by `own`) + (1 - weight)/(k + first-stage rank). Rank 0 (unknown) counts as last.

    With no first-stage ranks at all, the fused score is just `own` (MaxSim alone)."""
    n = len(own)
    if n == 0 or not any(first_stage_ranks):
        return [float(x) for x in own]
    order = sorted(range(n), key=lambda i: (-own[i], i))
    own_rank = [0] * n
    for r, i in enumerate(order, start=1):
        own_rank[i] = r
    worst = max(max(first_stage_ranks), n)
    fs = [r if r > 0 else worst for r in first_stage_ranks]
    return [weight / (k + own_rank[i]) + (1.0 - weight) / (k + fs[i]) for i in range(n)]


def zscore(x: np.ndarray) -> np.ndarray:
    """(x - mean) / std over one request's candidates (a flat list becomes all zeros)."""
    return (x - x.mean()) / (x.std() + 1e-9)


def linear_fuse(own: Sequence[float], first_stage_ranks: Sequence[int], weight: float, k: float) -> list[float]:
    """weight * z(own) + (1 - weight) * z(1 / (k + first-stage rank)), z over this request's candidates.

    Rank 0 (unknown) counts as last; with no first-stage ranks at all the score is just `own`."""
    n = len(own)
    if n == 0 or not any(first_stage_ranks):
        return [float(x) for x in own]
    worst = max(max(first_stage_ranks), n)
    fs = np.array([1.0 / (k + (r if r > 0 else worst)) for r in first_stage_ranks])
    return (weight * zscore(np.asarray(own, dtype=np.float64)) + (1.0 - weight) * zscore(fs)).tolist()


def linear_score_fuse(own: Sequence[float], first_stage_ranks: Sequence[int], weight: float, k: float,
                      first_stage_scores: Sequence[float] = ()) -> list[float]:
    """weight * z(own) + (1 - weight) * z(first-stage score), z over this request's candidates.

    Uses the first stage's own score (e.g. the gateway's convex fused score), which keeps how far apart the
    candidates are, not just their order. A candidate of unknown rank (0) gets the lowest known score. Falls back
    to `linear_fuse` (rank-based, constant k) when the scores carry no information (missing or all equal), and to
    `own` alone when there is no first-stage rank at all."""
    n = len(own)
    if n == 0 or not any(first_stage_ranks):
        return [float(x) for x in own]
    known = [float(s) for s, r in zip(first_stage_scores, first_stage_ranks) if r > 0]
    if len(first_stage_scores) != n or not known or max(known) == min(known):
        return linear_fuse(own, first_stage_ranks, weight, k)
    low = min(known)
    fs = np.array([float(s) if r > 0 else low for s, r in zip(first_stage_scores, first_stage_ranks)])
    return (weight * zscore(np.asarray(own, dtype=np.float64)) + (1.0 - weight) * zscore(fs)).tolist()


FUSIONS = {"linear": linear_fuse, "rrf": rrf_fuse, "linear-score": linear_score_fuse}
