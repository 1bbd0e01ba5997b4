"""The reranker's gRPC edge: decode, call the core, encode."""

from __future__ import annotations

from winnow.api.internal.reranker.v1 import reranker_pb2 as pb
from winnow.api.internal.reranker.v1 import reranker_pb2_grpc as pb_grpc
from winnow.services.reranker import convert
from winnow.services.reranker.core import RerankerCore


class RerankerServicer(pb_grpc.RerankerServicer):
    def __init__(self, core: RerankerCore) -> None:
        self.core = core

    async def Rerank(self, request: pb.RerankRequest, context) -> pb.RerankResponse:  # noqa: N802
        result = await self.core.rerank(request.query, convert.candidates_from_proto(request), request.top_n,
                                        request.depth)
        return convert.rerank_result_to_proto(result)

    async def Info(self, request: pb.InfoRequest, context) -> pb.InfoResponse:  # noqa: N802
        return convert.info_to_proto(self.core)

