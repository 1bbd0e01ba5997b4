"""Reranker proto <-> domain conversion."""

from __future__ import annotations

from winnow.api.internal.reranker.v1 import reranker_pb2 as pb
from winnow.models.scorer import Candidate
from winnow.services.reranker.core import RerankerCore, RerankResult


def candidates_from_proto(request: pb.RerankRequest) -> list[Candidate]:
    """RerankRequest.candidates -> domain candidates (validation happens in the core)."""
    return [Candidate(c.id, c.text, c.first_stage_rank, c.first_stage_score) for c in request.candidates]


def rerank_result_to_proto(result: RerankResult) -> pb.RerankResponse:
    return pb.RerankResponse(
        results=[pb.Hit(id=r.id, score=r.score, index=r.index, truncated=r.truncated)
                 for r in result.results],
        model=result.model, scorer=result.scorer, timings_ms=result.timings_ms,
    )


def info_to_proto(core: RerankerCore) -> pb.InfoResponse:
    s = core.scorer
    return pb.InfoResponse(model=s.model_id, scorer=core.scorer_name, device=s.placement.device, dtype=s.placement.dtype,
                           max_candidates=core.max_candidates, max_length=s.max_length)
