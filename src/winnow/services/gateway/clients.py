"""The gateway's ports implemented over gRPC. Downstream RpcErrors become domain errors naming the dependency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np

from winnow.api.internal.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from winnow.api.internal.index.v1 import index_pb2, index_pb2_grpc
from winnow.api.internal.reranker.v1 import reranker_pb2, reranker_pb2_grpc
from winnow.core.channels import make_channel
from winnow.core.protovalues import to_value
from winnow.core.errors import from_rpc_error
from winnow.core.tls import PLAINTEXT, ChannelSecurity
from winnow.services.gateway.model import Candidate
from winnow.services.gateway.ports import ShardHit, ShardQuery, ShardRangeQuery, ShardResult, ShardStats, WriteRecord


def _filters(filters: tuple[tuple[str, Any], ...]) -> list[index_pb2.Filter]:
    return [index_pb2.Filter(field=field, equals=to_value(value)) for field, value in filters]


def _hit(h: index_pb2.Hit) -> ShardHit:
    return ShardHit(id=h.id, score=h.score, text=h.text, metadata_json=h.metadata_json)


class GrpcEmbedder:
    def __init__(self, target: str, security: ChannelSecurity = PLAINTEXT) -> None:
        self.target = target
        self.channel = make_channel(target, security=security)
        self.stub = embedder_pb2_grpc.EmbedderStub(self.channel)

    async def embed(self, texts: list[str], *, query: bool, timeout: float | None) -> np.ndarray:
        kind = embedder_pb2.INPUT_KIND_QUERY if query else embedder_pb2.INPUT_KIND_DOCUMENT
        try:
            resp = await self.stub.Embed(embedder_pb2.EmbedRequest(texts=texts, kind=kind), timeout=timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err, "embedder") from None
        return np.asarray([e.values for e in resp.embeddings], dtype=np.float32)

    async def describe(self, timeout: float | None) -> dict[str, Any]:
        try:
            info = await self.stub.Info(embedder_pb2.InfoRequest(), timeout=timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err, "embedder") from None
        return {"model": info.model, "dimension": info.dimension, "device": info.device,
                "allowed_dimensions": list(info.allowed_dimensions)}

    async def close(self) -> None:
        await self.channel.close()


class GrpcReranker:
    def __init__(self, target: str, security: ChannelSecurity = PLAINTEXT) -> None:
        self.target = target
        self.channel = make_channel(target, security=security)
        self.stub = reranker_pb2_grpc.RerankerStub(self.channel)

    async def rerank(self, query: str, candidates: list[Candidate], timeout: float | None) -> list[float]:
        req = reranker_pb2.RerankRequest(
            query=query,
            candidates=[
                reranker_pb2.Candidate(id=c.id, text=c.text, first_stage_rank=c.first_stage_rank,
                                       first_stage_score=c.first_stage_score)
                for c in candidates
            ],
        )
        try:
            resp = await self.stub.Rerank(req, timeout=timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err, "reranker") from None
        scores = [0.0] * len(candidates)
        for r in resp.results:
            scores[r.index] = r.score
        return scores

    async def describe(self, timeout: float | None) -> dict[str, Any]:
        try:
            info = await self.stub.Info(reranker_pb2.InfoRequest(), timeout=timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err, "reranker") from None
        return {"model": info.model, "scorer": info.scorer, "device": info.device}

    async def close(self) -> None:
        await self.channel.close()


class GrpcShard:
    def __init__(self, name: str, target: str, security: ChannelSecurity = PLAINTEXT) -> None:
        self.name = name
        self.target = target
        self.channel = make_channel(target, security=security)
        self.stub = index_pb2_grpc.IndexShardStub(self.channel)

    def _err(self, err: grpc.RpcError):
        return from_rpc_error(err, self.name)

    async def search(self, query: ShardQuery, timeout: float | None) -> ShardResult:
        req = index_pb2.SearchRequest(
            vector=[] if query.vector is None else query.vector.tolist(),
            k=query.k, query_text=query.query_text, lexical_k=query.lexical_k, filters=_filters(query.filters),
            params=index_pb2.SearchParams(nprobe=query.nprobe, ef_search=query.ef_search),
            coarse_dim=query.coarse_dim, include_payloads=True,
        )
        try:
            resp = await self.stub.Search(req, timeout=timeout)
        except grpc.RpcError as err:
            raise self._err(err) from None
        return ShardResult([_hit(h) for h in resp.dense], [_hit(h) for h in resp.lexical], resp.generation)

    async def range_search(self, query: ShardRangeQuery, timeout: float | None) -> AsyncIterator[list[ShardHit]]:
        req = index_pb2.RangeSearchRequest(
            vector=query.vector.tolist(), threshold=query.threshold, page_size=query.page_size,
            filters=_filters(query.filters), coarse_dim=query.coarse_dim, include_payloads=True,
            max_results=query.max_results,
            params=index_pb2.SearchParams(nprobe=query.nprobe, ef_search=query.ef_search),
        )
        call = self.stub.RangeSearch(req, timeout=timeout)
        try:
            async for page in call:
                yield [_hit(h) for h in page.hits]
        except grpc.RpcError as err:
            raise self._err(err) from None
        finally:
            call.cancel()

    async def upsert(self, records: list[WriteRecord], timeout: float | None) -> int:
        req = index_pb2.UpsertRequest(documents=[
            index_pb2.Document(id=r.id, vector=r.vector.tolist(), text=r.text, metadata_json=r.metadata_json)
            for r in records
        ])
        try:
            return (await self.stub.Upsert(req, timeout=timeout)).generation
        except grpc.RpcError as err:
            raise self._err(err) from None

    async def delete(self, ids: list[str], timeout: float | None) -> tuple[int, int]:
        try:
            resp = await self.stub.Delete(index_pb2.DeleteRequest(ids=ids), timeout=timeout)
        except grpc.RpcError as err:
            raise self._err(err) from None
        return resp.deleted, resp.generation

    async def watch(self) -> AsyncIterator[int]:
        call = self.stub.Watch(index_pb2.WatchRequest())  # long-lived by design: no deadline
        try:
            async for update in call:
                yield update.generation
        except grpc.RpcError as err:
            raise self._err(err) from None
        finally:
            call.cancel()

    async def get(self, ids: list[str], timeout: float | None) -> tuple[list[ShardHit], list[str]]:
        try:
            resp = await self.stub.Get(index_pb2.GetRequest(ids=ids), timeout=timeout)
        except grpc.RpcError as err:
            raise self._err(err) from None
        return [_hit(h) for h in resp.documents], list(resp.missing)

    async def stats(self, timeout: float | None) -> ShardStats:
        try:
            s = await self.stub.Stats(index_pb2.StatsRequest(), timeout=timeout)
        except grpc.RpcError as err:
            raise self._err(err) from None
        return ShardStats(self.name, s.count, s.generation, s.index_factory, s.dimension)

    async def close(self) -> None:
        await self.channel.close()


