"""Merging shard lists and fusing the dense and lexical lists into one first-stage order."""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from winnow.services.gateway.model import Candidate


def merge_top(lists: Iterable[list[tuple[float, str, object]]], k: int) -> list[tuple[float, str, object]]:
    """Top k of several (score, id, payload) lists by score, best first; ties broken by id for determinism."""
    return heapq.nsmallest(k, (item for lst in lists for item in lst), key=lambda t: (-t[0], t[1]))


def rrf(
    dense: list[Candidate], lexical: list[Candidate], k: int = 60, window: int = 80,
    dense_weight: float = 1.0, lexical_weight: float = 1.0,
) -> list[Candidate]:
    """Reciprocal rank fusion (Cormack et al. 2009): score = sum_w w / (k + rank).

    `dense` and `lexical` are ranked lists (best first). Returns the fused top `window`, with each candidate's
    dense_rank, lexical_rank, first_stage_rank and first_stage_score set.
    """
    by_id: dict[str, Candidate] = {}
    for rank, c in enumerate(dense, 1):
        cur = by_id.setdefault(c.id, c)
        cur.dense_rank, cur.dense_score = rank, c.dense_score
    for rank, c in enumerate(lexical, 1):
        cur = by_id.setdefault(c.id, c)
        cur.lexical_rank, cur.lexical_score = rank, c.lexical_score
        if not cur.text and c.text:
            cur.text, cur.metadata_json = c.text, c.metadata_json
    for c in by_id.values():
        s = 0.0
        if c.dense_rank:
            s += dense_weight / (k + c.dense_rank)
        if c.lexical_rank:
            s += lexical_weight / (k + c.lexical_rank)
        c.first_stage_score = s
    fused = sorted(by_id.values(), key=lambda c: (-c.first_stage_score, c.id))[:window]
    for rank, c in enumerate(fused, 1):
        c.first_stage_rank = rank
    return fused


def single_list(cands: list[Candidate], window: int, dense: bool) -> list[Candidate]:
    """First-stage order when only one list is asked for (dense-only or lexical-only)."""
    out = cands[:window]
    for rank, c in enumerate(out, 1):
        c.first_stage_rank = rank
        if dense:
            c.dense_rank = rank
            c.first_stage_score = c.dense_score or 0.0
        else:
            c.lexical_rank = rank
            c.first_stage_score = c.lexical_score or 0.0
    return out
