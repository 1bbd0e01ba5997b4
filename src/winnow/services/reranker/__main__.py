"""`python -m winnow.services.reranker [--flags]`: settings -> scorer -> core -> gRPC server."""

from __future__ import annotations

import sys

from winnow.rpc.server import Wiring, service_main, wire_model
from winnow.services.reranker.settings import CROSS_ENCODER, LATE_INTERACTION, RerankerSettings

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
    return late_interaction_scorer(settings, settings.model_dir or None)


def late_interaction_scorer(settings: RerankerSettings, model_dir: str | None):
    """MaxSim over an encoder's token vectors (the default scorer, and the cascade's cheap stage)."""
    from winnow.models.encoder import SentenceTransformerEncoder
    from winnow.models.late_interaction import LateInteractionScorer

    encoder = SentenceTransformerEncoder(model_dir, settings.device)
    store = None
    if settings.token_store_dir:
        from winnow.models.token_store import TokenVectorStore

        variant = f"L{encoder.max_seq_length}{'-nospecial' if settings.skip_special_tokens else ''}"
        store = TokenVectorStore(settings.token_store_dir, encoder.model_id, variant)
    return LateInteractionScorer(encoder, fusion=settings.fusion, weight=settings.fusion_weight,
                                 rrf_k=settings.fusion_rrf_k, skip_special=settings.skip_special_tokens,
                                 cache_bytes=settings.cache_mb << 20, store=store)


def build(settings: RerankerSettings, scorer=None) -> Wiring:
    """Wire scorer, core and service (also used by tests and benchmarks)."""
    from winnow.api.internal.reranker.v1 import reranker_pb2, reranker_pb2_grpc
    from winnow.models.trained import read_manifest, served_cascade_depth
    from winnow.services.reranker.core import RerankerCore
    from winnow.services.reranker.server import RerankerServicer

    scorer = scorer or build_scorer(settings)
    depth = served_cascade_depth(read_manifest(settings.model_dir) if settings.scorer == CROSS_ENCODER else {},
                                 settings.cascade_depth)
    cheap = None
    if depth and settings.cascade_cheap == LATE_INTERACTION:
        cheap = late_interaction_scorer(settings, None)  # the packaged MiniLM (model_dir is the cross-encoder's)
    core = RerankerCore(scorer, max_candidates=settings.max_candidates,
                        limits=settings.batcher_limits(), cascade_depth=depth, cheap=cheap)
    return wire_model(SERVICE, settings, core, RerankerServicer(core), reranker_pb2_grpc.add_RerankerServicer_to_server,
                      reranker_pb2.DESCRIPTOR.services_by_name["Reranker"])


main = service_main(SERVICE, RerankerSettings, build)

if __name__ == "__main__":
    sys.exit(main())
