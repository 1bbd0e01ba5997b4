"""`python -m winnow.services.reranker [--flags]`: settings -> scorer -> core -> gRPC server."""

from __future__ import annotations

import sys

from winnow.rpc.server import GrpcService, Wiring, serve
from winnow.services.reranker.settings import CROSS_ENCODER, RerankerSettings

SERVICE = "reranker"


def build_scorer(settings: RerankerSettings):
    """The configured scorer (cross-encoder from model_dir, or late interaction over an encoder)."""
    from winnow.models.loading import ModelLoadError, set_threads

    set_threads(settings.threads)
    if settings.scorer == CROSS_ENCODER:
        from winnow.models.scorer import CrossEncoderScorer

        if not settings.model_dir:
            raise ModelLoadError("scorer=cross-encoder needs model_dir: a local sequence-classification model")
        return CrossEncoderScorer(settings.model_dir, settings.device, settings.max_length,
                                  fusion_weight=settings.ce_fusion_weight, fusion_rrf_k=settings.fusion_rrf_k,
                                  sub_batch=settings.ce_sub_batch, bf16=settings.bf16)
    from winnow.models.encoder import SentenceTransformerEncoder
    from winnow.models.late_interaction import LateInteractionScorer

    encoder = SentenceTransformerEncoder(settings.model_dir or None, settings.device)
    return LateInteractionScorer(encoder, fusion=settings.fusion, weight=settings.fusion_weight,
                                 rrf_k=settings.fusion_rrf_k, skip_special=settings.skip_special_tokens,
                                 cache_bytes=settings.cache_mb << 20)


def build(settings: RerankerSettings, scorer=None) -> Wiring:
    """Wire scorer, core and service (also used by tests and benchmarks)."""
    from winnow.services.reranker.core import RerankerCore
    from winnow.services.reranker.server import register

    core = RerankerCore(scorer or build_scorer(settings), max_candidates=settings.max_candidates,
                        **settings.batcher_limits())
    return Wiring(GrpcService(SERVICE, settings, register(core), probe=core.probe), core, core.warmup, core.close)


def main(argv: list[str] | None = None) -> int:
    return serve(SERVICE, RerankerSettings, build, argv)


if __name__ == "__main__":
    sys.exit(main())
