"""The embedder's gRPC edge: decode, call the core, encode."""

from __future__ import annotations

from winnow.api.internal.embedder.v1 import embedder_pb2 as pb
from winnow.api.internal.embedder.v1 import embedder_pb2_grpc as pb_grpc
from winnow.services.embedder import convert
from winnow.services.embedder.core import EmbedderCore


class EmbedderServicer(pb_grpc.EmbedderServicer):
    def __init__(self, core: EmbedderCore) -> None:
        self.core = core

    async def Embed(self, request: pb.EmbedRequest, context) -> pb.EmbedResponse:  # noqa: N802
        result = await self.core.embed(list(request.texts), convert.kind_from_proto(request.kind), request.dimension)
        return convert.embed_result_to_proto(result)

    async def Info(self, request: pb.InfoRequest, context) -> pb.InfoResponse:  # noqa: N802
        return convert.info_to_proto(self.core)

