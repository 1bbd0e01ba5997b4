"""Fit learning-to-rank models on judged candidate windows and choose one on held-out training queries.

- **linear**: a pairwise logistic (RankNet) loss over every (more relevant, less relevant) pair of a query's
  window, each query's pairs weighted to sum to 1 (every query counts the same), plus L2; features normalised
  by the fit set's mean and std. The loss is convex and the fit is Newton's method from zero, so it is
  deterministic (the seed only draws pairs when a query has more than `MAX_PAIRS`). L2 is chosen on held out.
- **lightgbm** (when the package imports): LambdaMART (`objective=lambdarank`, nDCG@10), a small fixed tree shape,
  the number of rounds chosen on held out; `deterministic`, one thread by default.
- **none**: the reranker's own order (the first stage's, without a reranker feature).

The candidate with the best held-out nDCG@10 is written; a tie goes to the simpler one (none < linear < lightgbm),
so a learned model is served only where it beat the order it replaces. When "none" wins, the file still serves:
it is a linear model with all its weight on the reranker's score (or the first-stage rank), i.e. the same order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from winnow.eval.metrics import ndcg_at_k
from winnow.models.ltr import LtrModel

log = logging.getLogger(__name__)

L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
ROUNDS = (25, 50, 100, 200, 400)
MAX_PAIRS = 4096
LGBM_PARAMS = {"objective": "lambdarank", "metric": "ndcg", "ndcg_eval_at": [10], "learning_rate": 0.05,
               "num_leaves": 15, "min_data_in_leaf": 20, "lambdarank_truncation_level": 20,
               "deterministic": True, "force_row_wise": True, "verbose": -1}


@dataclass
class Group:
    """One judged query's window: raw features (rows = candidates), relevance grades, ids, first-stage ranks and
    the query's qrels (nDCG's ideal counts relevant documents outside the window too)."""

    x: np.ndarray
    y: np.ndarray
    ids: list[str]
    ranks: np.ndarray
    rels: dict[str, int]


def order(scores: np.ndarray, ranks: np.ndarray) -> list[int]:
    """Best first; ties by first-stage rank (as the gateway breaks them)."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], ranks[i]))


def mean_ndcg(groups: Sequence[Group], score: Callable[[Group], np.ndarray]) -> float:
    if not groups:
        return 0.0
    return float(np.mean([ndcg_at_k([g.ids[i] for i in order(score(g), g.ranks)], g.rels, 10) for g in groups]))


def normalisation(groups: Sequence[Group]) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std over every candidate of the fit set (std 0 -> 1)."""
    x = np.concatenate([g.x for g in groups])
    std = x.std(axis=0)
    return x.mean(axis=0), np.where(std > 1e-12, std, 1.0)


def _pairs(groups: Sequence[Group], mean: np.ndarray, scale: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    diffs, weights = [], []
    for g in groups:
        z = (g.x - mean) / scale
        hi, lo = np.nonzero(g.y[:, None] > g.y[None, :])
        if hi.size == 0:
            continue
        if hi.size > MAX_PAIRS:
            keep = np.sort(rng.choice(hi.size, MAX_PAIRS, replace=False))
            hi, lo = hi[keep], lo[keep]
        diffs.append(z[hi] - z[lo])
        weights.append(np.full(hi.size, 1.0 / hi.size))
    if not diffs:
        return np.zeros((0, mean.size)), np.zeros(0)
    return np.concatenate(diffs), np.concatenate(weights)


def fit_linear(groups: Sequence[Group], mean: np.ndarray, scale: np.ndarray, l2: float, seed: int = 0,
               iterations: int = 50) -> np.ndarray:
    """Weights minimising the query-averaged pairwise logistic loss + l2/2 |w|^2 (Newton's method)."""
    d, v = _pairs(groups, mean, scale, seed)
    w = np.zeros(mean.size)
    if v.size == 0:
        return w
    total = v.sum()
    for _ in range(iterations):
        m = d @ w
        p = 1.0 / (1.0 + np.exp(np.clip(m, -50, 50)))  # sigma(-m): how wrong each pair is
        grad = -(d.T @ (v * p)) / total + l2 * w
        hess = (d.T * (v * p * (1 - p))) @ d / total + l2 * np.eye(w.size)
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-9:
            break
    return w


def _lgbm_data(groups: Sequence[Group], mean: np.ndarray, scale: np.ndarray):
    x = np.concatenate([(g.x - mean) / scale for g in groups])
    y = np.concatenate([g.y for g in groups]).astype(int)
    return x, y, [len(g.ids) for g in groups]


def fit_lightgbm(groups: Sequence[Group], mean: np.ndarray, scale: np.ndarray, seed: int, rounds: int,
                 threads: int = 1):
    """A LambdaMART booster (lightgbm must import)."""
    import lightgbm

    x, y, sizes = _lgbm_data(groups, mean, scale)
    params = {**LGBM_PARAMS, "seed": seed, "num_threads": max(1, threads)}
    return lightgbm.train(params, lightgbm.Dataset(x, label=y, group=sizes), num_boost_round=rounds)


def passthrough(features: Sequence[str]) -> np.ndarray:
    """Weights that reproduce the order the LTR would replace: the reranker's score, else the first-stage rank."""
    w = np.zeros(len(features))
    w[list(features).index("reranker" if "reranker" in features else "rank")] = 1.0
    return w


def choose(fit: Sequence[Group], held: Sequence[Group], features: Sequence[str], depth: int, seed: int = 0,
           kinds: Sequence[str] = ("linear", "lightgbm"), threads: int = 1) -> LtrModel:
    """Fit every candidate on `fit`, score each on `held` (nDCG@10), return the best as a model whose report
    holds the whole comparison."""
    mean, scale = normalisation(fit)
    features = tuple(features)
    base = LtrModel("linear", features, mean, scale, weights=passthrough(features), depth=depth)
    trials: list[tuple[str, dict, LtrModel]] = [("none", {}, base)]
    if "linear" in kinds:
        for l2 in L2_GRID:
            m = LtrModel("linear", features, mean, scale, weights=fit_linear(fit, mean, scale, l2, seed), depth=depth)
            trials.append(("linear", {"l2": l2}, m))
    if "lightgbm" in kinds:
        booster = fit_lightgbm(fit, mean, scale, seed, max(ROUNDS), threads)
        for rounds in ROUNDS:
            text = booster.model_to_string(num_iteration=rounds)
            trials.append(("lightgbm", {"rounds": rounds}, LtrModel("lightgbm", features, mean, scale, booster=text,
                                                                    depth=depth)))
    rows = []
    for name, params, m in trials:
        row = {"model": name, **params, "fit_ndcg@10": round(mean_ndcg(fit, lambda g: m.score_matrix(g.x)), 4)}
        if held:
            row["held_out_ndcg@10"] = round(mean_ndcg(held, lambda g: m.score_matrix(g.x)), 4)
        rows.append(row)
    simple = {"none": 0, "linear": 1, "lightgbm": 2}
    key = "held_out_ndcg@10" if held else None
    if key is None:  # nothing held out: the linear model with a middling L2, said so
        best = next(i for i, (n, p, _) in enumerate(trials) if n == "linear" and p["l2"] == 1e-2) \
            if "linear" in kinds else 0
    else:
        best = max(range(len(trials)), key=lambda i: (rows[i][key], -simple[trials[i][0]], -i))
    name, params, model = trials[best]
    best_of = {}
    for i, (n, _, _) in enumerate(trials):
        if key and (n not in best_of or rows[i][key] > rows[best_of[n]][key]):
            best_of[n] = i
    model.report = {
        "chosen": name, **params, "selected_on": f"{len(held)} held-out training queries (nDCG@10)" if held
        else "nothing held out: linear, l2 0.01 (not selected)",
        "fit_queries": len(fit), "held_out_queries": len(held), "trials": rows,
        "held_out_ndcg@10": {n: rows[i][key] for n, i in best_of.items()} if key else {},
    }
    if name == "linear":
        model.report["weights"] = dict(zip(features, (round(float(w), 4) for w in model.weights)))
    return model
