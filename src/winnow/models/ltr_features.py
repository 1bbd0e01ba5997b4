"""Learning-to-rank features of one query's candidate window: one function, used by training and by the gateway.

A candidate is anything with the gateway's `Candidate` evidence (`winnow.services.gateway.model.Candidate`):
`dense_score` / `lexical_score` (None when the document was not in that list), `first_stage_score` (the fused
score), `first_stage_rank` (1-based), `rerank_score` (what the reranker returned: its `finish()` output, e.g. the
cross-encoder fused with the first stage), `text` and `metadata_json`. `winnow train ltr` builds such candidates
from the same first stage and scorer the cluster serves, so a feature means the same thing in both places.

Score features are z-normalised over the window (mean and population std of the list; a flat list gives zeros),
because raw cosines, BM25 scores and logits are not comparable across queries; a value the candidate lacks (not in
the BM25 list, say) gets the list's minimum before the z-score, as the gateway's convex fusion does. The rank,
the presence flags, the length and metadata values are comparable across queries as they are.

| name | value |
|---|---|
| `dense` | z(dense cosine) |
| `lexical` | z(BM25 score) |
| `fused` | z(first-stage fused score) |
| `reranker` | z(reranker score) |
| `rank` | 1 / (RANK_K + first-stage rank) |
| `dense_present`, `lexical_present` | 1 when the document was in that first-stage list, else 0 |
| `length` | log(1 + characters of the text) |
| `meta:<field>` | a numeric metadata field (dots reach into nested objects; e.g. `meta:year`), absent = the list's minimum |
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

RANK_K = 60.0
BASE_FEATURES = ("dense", "lexical", "fused", "reranker", "rank", "dense_present", "lexical_present", "length")
META = "meta:"


class RankedCandidate(Protocol):
    """What a feature reads of a candidate (the gateway's Candidate has all of it)."""

    dense_score: float | None
    lexical_score: float | None
    first_stage_score: float
    first_stage_rank: int
    rerank_score: float | None
    text: str
    metadata_json: str


def check_names(names: Sequence[str]) -> None:
    """ValueError naming the first feature that is not known (a model file naming one is refused)."""
    if not names:
        raise ValueError("no features")
    if len(set(names)) != len(names):
        raise ValueError(f"features repeat: {list(names)}")
    for n in names:
        if n not in BASE_FEATURES and not (n.startswith(META) and len(n) > len(META)):
            raise ValueError(f"unknown feature {n!r}: known are {', '.join(BASE_FEATURES)} and meta:<field>")


def _filled(values: Sequence[float | None]) -> np.ndarray:
    """Missing (None or not finite) values -> the list's minimum of the present ones (0 when none is)."""
    present = [float(v) for v in values if v is not None and math.isfinite(v)]
    low = min(present) if present else 0.0
    return np.array([float(v) if v is not None and math.isfinite(v) else low for v in values], dtype=np.float64)


def _z(x: np.ndarray) -> np.ndarray:
    std = float(x.std()) if x.size else 0.0
    return (x - x.mean()) / std if std > 0 else np.zeros_like(x)


def _number(metadata_json: str, path: str) -> float | None:
    """The numeric value at a dotted path of a JSON object, or None (absent, not a number, bool, unreadable)."""
    if not metadata_json:
        return None
    try:
        value: Any = json.loads(metadata_json)
    except (ValueError, RecursionError):
        return None
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _column(name: str, cands: Sequence[RankedCandidate]) -> np.ndarray:
    if name == "dense":
        return _z(_filled([c.dense_score for c in cands]))
    if name == "lexical":
        return _z(_filled([c.lexical_score for c in cands]))
    if name == "fused":
        return _z(_filled([c.first_stage_score for c in cands]))
    if name == "reranker":
        return _z(_filled([c.rerank_score for c in cands]))
    if name == "rank":
        worst = len(cands) + 1
        return np.array([1.0 / (RANK_K + (c.first_stage_rank if c.first_stage_rank > 0 else worst))
                         for c in cands])
    if name == "dense_present":
        return np.array([float(c.dense_score is not None) for c in cands])
    if name == "lexical_present":
        return np.array([float(c.lexical_score is not None) for c in cands])
    if name == "length":
        return np.array([math.log1p(len(c.text or "")) for c in cands])
    return _filled([_number(c.metadata_json, name[len(META):]) for c in cands])


def feature_matrix(candidates: Sequence[RankedCandidate], names: Sequence[str]) -> np.ndarray:
    """(len(candidates), len(names)) float64 features of one query's window, columns in `names` order."""
    out = np.zeros((len(candidates), len(names)), dtype=np.float64)
    if not candidates:
        return out
    for j, name in enumerate(names):
        out[:, j] = _column(name, candidates)
    return out
