"""The gateway's ports implemented over gRPC. Downstream RpcErrors become domain errors naming the dependency.

Every call goes through `_Client.call` (unary) or `_Client.stream` (server streaming), the one place that turns
an RpcError into a domain error; requests and replies are built and read by `convert`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from winnow.api.internal.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from winnow.api.internal.index.v1 import index_pb2, index_pb2_grpc
from winnow.api.internal.reranker.v1 import reranker_pb2, reranker_pb2_grpc
from winnow.rpc.channels import make_channel
from winnow.rpc.status import from_rpc_error
from winnow.rpc.tls import PLAINTEXT, ChannelSecurity
from winnow.services.gateway import convert
from winnow.services.gateway.model import Candidate
from winnow.services.gateway.ports import Hit, ShardQuery, ShardRangeQuery, ShardResult, ShardStats


class _Client:
    """A channel to one dependency; `name` labels its errors ("embedder", "shard-1")."""

    def __init__(self, name: str, target: str, **channel_options: Any) -> None:
        self.name = name
        self.target = target
        self.channel = make_channel(target, **channel_options)

    async def call(self, method, request, timeout: float | None):
        """One unary call; an RpcError becomes the matching domain error, naming this dependency."""
        try:
            return await method(request, timeout=timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err, self.name) from None

    async def stream(self, method, request, timeout: float | None = None,
                     wait_for_ready: bool | None = None) -> AsyncIterator[Any]:
        """A server-streaming call's messages; cancelled when the consumer stops early."""
        call = method(request, timeout=timeout, wait_for_ready=wait_for_ready)
        try:
            async for message in call:
                yield message
        except grpc.RpcError as err:
            raise from_rpc_error(err, self.name) from None
        finally:
            call.cancel()

    async def close(self) -> None:
        await self.channel.close()


class GrpcEmbedder(_Client):
    def __init__(self, target: str, security: ChannelSecurity = PLAINTEXT) -> None:
        super().__init__("embedder", target, security=security)
        self.stub = embedder_pb2_grpc.EmbedderStub(self.channel)

    async def embed(self, texts: list[str], *, query: bool, timeout: float | None) -> np.ndarray:
        resp = await self.call(self.stub.Embed, convert.embed_request_to_proto(texts, query), timeout)
        return convert.vectors_from_proto(resp)

    async def describe(self, timeout: float | None) -> dict[str, Any]:
        return convert.embedder_info_from_proto(await self.call(self.stub.Info, embedder_pb2.InfoRequest(), timeout))


class GrpcReranker(_Client):
    def __init__(self, target: str, security: ChannelSecurity = PLAINTEXT) -> None:
        super().__init__("reranker", target, security=security)
        self.stub = reranker_pb2_grpc.RerankerStub(self.channel)

    async def rerank(self, query: str, candidates: list[Candidate], timeout: float | None,
                     depth: int = 0) -> list[float]:
        resp = await self.call(self.stub.Rerank, convert.rerank_request_to_proto(query, candidates, depth), timeout)
        return convert.rerank_scores_from_proto(resp, len(candidates))

    async def describe(self, timeout: float | None) -> dict[str, Any]:
        return convert.reranker_info_from_proto(await self.call(self.stub.Info, reranker_pb2.InfoRequest(), timeout))


class GrpcShard(_Client):
    """One shard replica. No channel-level retries: the replica set fails over to another replica instead, and
    the reconnect backoff is capped so a replica back on its old address is found within `reconnect_max_ms`."""

    def __init__(self, name: str, target: str, reconnect_max_ms: int = 1000,
                 security: ChannelSecurity = PLAINTEXT) -> None:
        super().__init__(name, target, retries=False, reconnect_max_ms=reconnect_max_ms, security=security)
        self.stub = index_pb2_grpc.IndexShardStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    async def check(self, timeout: float) -> bool:
        """One grpc.health.v1 Check with a deadline: True = SERVING."""
        resp = await self.call(self.health.Check, health_pb2.HealthCheckRequest(), timeout)
        return resp.status == health_pb2.HealthCheckResponse.SERVING

    async def serving(self) -> AsyncIterator[bool]:
        """The replica's grpc.health.v1 status (True = SERVING) now and on every change; waits for it to be up."""
        # Long-lived by design: no deadline.
        async for resp in self.stream(self.health.Watch, health_pb2.HealthCheckRequest(), wait_for_ready=True):
            yield resp.status == health_pb2.HealthCheckResponse.SERVING

    async def search(self, query: ShardQuery, timeout: float | None) -> ShardResult:
        resp = await self.call(self.stub.Search, convert.shard_query_to_proto(query), timeout)
        return convert.shard_result_from_proto(resp)

    async def range_search(self, query: ShardRangeQuery, timeout: float | None) -> AsyncIterator[list[Hit]]:
        async for page in self.stream(self.stub.RangeSearch, convert.range_query_to_proto(query), timeout):
            yield convert.hits_from_proto(page.hits)

    async def watch(self) -> AsyncIterator[int]:
        # Long-lived by design: no deadline.
        async for update in self.stream(self.stub.Watch, index_pb2.WatchRequest()):
            yield update.generation

    async def get(self, ids: list[str], timeout: float | None) -> tuple[list[Hit], list[str]]:
        resp = await self.call(self.stub.Get, index_pb2.GetRequest(ids=ids), timeout)
        return convert.hits_from_proto(resp.documents), list(resp.missing)

    async def stats(self, timeout: float | None) -> ShardStats:
        return convert.shard_stats_from_proto(self.name, await self.call(self.stub.Stats, index_pb2.StatsRequest(),
                                                                         timeout))
