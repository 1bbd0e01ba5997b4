"""What an eval run measured: per-pipeline scores and latency, and their JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from winnow.eval.beir import BeirDataset
from winnow.eval.metrics import judged_queries, set_recall_precision

#: The figures every pipeline reports (the --json keys), in table order.
REPORTED = ("ndcg@10", "mrr@10", "recall@10", "recall@80", "recall@100")


@dataclass
class PipelineResult:
    """One pipeline's scores and latency over the evaluated queries."""

    name: str
    metrics: dict[str, float]
    latency_ms: dict[str, dict[str, float]]  # stage -> {"p50", "p99"}
    queries: int
    errors: int
    reranked: int  # queries whose response says reranked=True
    bulk: dict[str, float] | None = None  # recall, precision, returned_mean/p50/max, threshold
    first_error: str = ""
    elapsed_s: float = 0.0  # wall time of the whole pipeline run
    # Per query, for reports (not in to_json): the returned ranking (doc id -> score, in returned order) and
    # each stage's latency samples (ms).
    run: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)
    samples: dict[str, list[float]] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict:
        """JSON object for --json: the metric keys at the top level, the rest alongside."""
        out: dict = {key: round(self.metrics.get(key, 0.0), 4) for key in REPORTED}
        out.update(queries=self.queries, errors=self.errors, reranked=self.reranked, latency_ms=self.latency_ms,
                   elapsed_s=self.elapsed_s)
        if self.bulk is not None:
            out["bulk"] = self.bulk
        if self.first_error:
            out["first_error"] = self.first_error
        return out


@dataclass
class EvalReport:
    """Everything one eval run measured."""

    dataset: str
    split: str
    queries: int
    documents: int
    ingest_s: float | None
    pipelines: dict[str, PipelineResult] = field(default_factory=dict)
    cluster: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """One JSON object keyed by pipeline name."""
        return {name: res.to_json() for name, res in self.pipelines.items()}


def percentiles(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """p50 and p99 (ms, 2 decimals) of every stage that has samples."""
    return {
        stage: {"p50": round(float(np.percentile(v, 50)), 2), "p99": round(float(np.percentile(v, 99)), 2)}
        for stage, v in sorted(samples.items())
        if v
    }


def bulk_summary(run: dict[str, dict[str, float]], dataset: BeirDataset, threshold: float) -> dict[str, float]:
    """Set recall and precision of bulk results over the judged queries, and how many documents came back."""
    judged = judged_queries(dataset.qrels)
    pairs = [set_recall_precision(run.get(q, {}), dataset.qrels[q]) for q in judged]
    counts = [len(run.get(q, {})) for q in judged] or [0]
    return {
        "threshold": threshold,
        "recall": round(float(np.mean([r for r, _ in pairs])) if pairs else 0.0, 4),
        "precision": round(float(np.mean([p for _, p in pairs])) if pairs else 0.0, 4),
        "returned_mean": round(float(np.mean(counts)), 1),
        "returned_p50": float(np.median(counts)),
        "returned_max": int(np.max(counts)),
    }
