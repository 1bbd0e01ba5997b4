"""Embedder proto <-> domain conversion."""

from __future__ import annotations

from winnow.api.internal.embedder.v1 import embedder_pb2 as pb
from winnow.common.errors import InvalidArgument
from winnow.services.embedder.core import EmbedderCore, EmbedResult

_KINDS = {pb.INPUT_KIND_UNSPECIFIED: "document", pb.INPUT_KIND_DOCUMENT: "document", pb.INPUT_KIND_QUERY: "query"}


def kind_from_proto(kind: int) -> str:
    """InputKind -> 'query' | 'document' (UNSPECIFIED is DOCUMENT)."""
    try:
        return _KINDS[kind]
    except KeyError:
        raise InvalidArgument(f"unknown kind {kind}: use INPUT_KIND_QUERY or INPUT_KIND_DOCUMENT") from None


def embed_result_to_proto(result: EmbedResult) -> pb.EmbedResponse:
    """EmbedResult -> EmbedResponse."""
    return pb.EmbedResponse(
        embeddings=[
            pb.Embedding(values=row.tolist(), tokens=tok, truncated=trunc)
            for row, tok, trunc in zip(result.vectors, result.tokens, result.truncated)
        ],
        model=result.model,
        dimension=result.dimension,
        timings_ms=result.timings_ms,
    )


def info_to_proto(core: EmbedderCore) -> pb.InfoResponse:
    """The loaded model and limits -> InfoResponse."""
    e = core.encoder
    return pb.InfoResponse(
        model=e.model_id, dimension=e.dimension, allowed_dimensions=list(e.allowed_dimensions),
        max_seq_length=e.max_seq_length, device=e.placement.device, dtype=e.placement.dtype,
        max_batch_texts=core.max_texts,
    )
