"""The gateway's optional last stage: a learned model (`winnow train ltr`) orders the reranked window.

Without a model (setting `ltr_model` = ""), the final order is the reranker's (first-stage order when the rerank
was skipped). With one, when the caller asked for a rerank:
- reranked: the model scores every candidate of the window from `winnow.models.ltr_features` (the function
  training used); hits are ordered by that score (the hit's `score`; `rerank_score` stays the reranker's), and the
  response's `reranker` reads `<reranker model/scorer>+ltr-<kind>@<id>`;
- the rerank was skipped (reranker down, late, not configured) and the model reads no reranker score: it orders
  the first-stage candidates, `reranker` reads `ltr-<kind>@<id>` and `rerank_skipped_reason` says so;
- skipped, and the model needs the reranker's score: first-stage order, and `rerank_skipped_reason` says the LTR
  was skipped too; likewise (the reranker's order kept) when the request's `rerank_depth` cuts the reranker at
  another depth than the one the model was trained with (its report's `cascade_depth`).
The model orders only the top `depth` candidates it was trained on (the window of `winnow train ltr --depth`):
past them a wider window keeps the previous stage's order and scores below them, so its features (z-scores over
the candidates) are computed over the same kind of list as in training. A search that did not ask for a rerank
keeps the first-stage order. Its time is `timings_ms["ltr"]`; the model's label is in the cache key
(`SearchCore.models`). No gRPC here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from winnow.models import ltr
from winnow.services.gateway.model import Candidate, SearchOptions

log = logging.getLogger(__name__)


@dataclass
class FinalOrder:
    hits: list[Candidate]
    reason: str  # the response's rerank_skipped_reason
    scorer: str  # the response's `reranker`: what ordered the hits ("" = the first stage)


class LtrStage:
    """A loaded model, ready to order one query's window."""

    def __init__(self, model: ltr.LtrModel) -> None:
        self.model = model
        self.label = model.label

    @classmethod
    def load(cls, path: str | Path) -> "LtrStage":
        """The stage for a model file; LtrModelError (the gateway then refuses to start) when it cannot serve."""
        stage = cls(ltr.load(path))
        m = stage.model
        log.info("ltr model loaded", extra={"fields": {
            "path": str(path), "model": stage.label, "features": list(m.features), "depth": m.depth,
            "trained_with_reranker": m.report.get("reranker", ""), "chosen": m.report.get("chosen", "")}})
        return stage

    def check_reranker(self, served: str) -> bool:
        """False (and a warning) when the reranker answering (`model/scorer`) is not the one the model was
        trained with: its score feature then means something else, and the order suffers unannounced."""
        trained = self.model.report.get("reranker", "")
        if not self.model.needs_reranker or not served or not trained or served == trained:
            return True
        log.warning("the reranker is not the one the ltr model was trained with; retrain it with `winnow train "
                    "ltr --reranker-model` on the served model", extra={"fields": {
                        "model": self.label, "trained_with": trained, "served": served}})
        return False

    def order(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        """The window best first by the model (ties: first-stage rank), each candidate's ltr_score set."""
        for c, s in zip(candidates, self.model.score(candidates)):
            c.ltr_score = float(s)
        return sorted(candidates, key=lambda c: (-(c.ltr_score or 0.0), c.first_stage_rank))


def final_order(stage: LtrStage | None, candidates: list[Candidate], opts: SearchOptions, reranked: bool,
                reason: str, reranker: str, timings: dict[str, float]) -> FinalOrder:
    """The hits in their final order, the skip reason and what ordered them (see the module docstring)."""
    if reranked:
        hits = sorted(candidates, key=lambda c: (-(c.rerank_score or 0.0), c.first_stage_rank))
    else:
        hits = candidates
    if stage is None or not opts.rerank or not candidates:
        return FinalOrder(hits, reason, reranker if reranked else "")
    if not reranked and stage.model.needs_reranker:
        return FinalOrder(hits, f"{reason}; {stage.label} skipped: it needs the reranker's score", "")
    trained = stage.model.report.get("cascade_depth")
    if reranked and stage.model.needs_reranker and opts.rerank_depth and isinstance(trained, int) \
            and opts.rerank_depth != (trained or len(candidates)):
        return FinalOrder(hits, f"{stage.label} skipped: it was trained on reranker scores of "
                          f"{'the top ' + str(trained) if trained else 'the whole window'}, this request's "
                          f"rerank_depth is {opts.rerank_depth}", reranker)
    depth = stage.model.depth
    top, rest = (hits[:depth], hits[depth:]) if depth else (hits, [])
    t = time.perf_counter()
    hits = stage.order(top) + rest
    timings["ltr"] = (time.perf_counter() - t) * 1000.0
    if reranked:
        return FinalOrder(hits, reason, f"{reranker}+{stage.label}")
    return FinalOrder(hits, f"{reason}; ordered by {stage.label} on first-stage features", stage.label)
