"""`AsyncWinnowClient`: the asyncio client, with the same methods as `WinnowClient` (awaitable)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.api.gateway.v1 import gateway_pb2_grpc
from winnow.client import feedback as fb
from winnow.client import requests as rq
from winnow.client._base import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_TIMEOUT_S, ClientBase, is_over_limit, \
    limits_from_info, sum_writes, unimplemented
from winnow.client.errors import WinnowError, from_rpc_error
from winnow.client.feedback import FeedbackRecord, FeedbackResult, Judgment
from winnow.client.retry import RetryPolicy
from winnow.client.settings import ClientSettings
from winnow.client.sync import _SMALL_WRITE_BYTES, _SMALL_WRITE_DOCS
from winnow.client.types import BulkPage, ClusterInfo, GetResult, Limits, SearchResult, WriteResult


class AsyncWinnowClient(ClientBase):
    """asyncio client: the methods of `WinnowClient`, as coroutines (`bulk_search` is an async iterator).

        async with AsyncWinnowClient() as w:       # WINNOW_TARGET, WINNOW_TOKEN, WINNOW_TLS_* apply
            result = await w.search("does aspirin reduce fever?", k=10)
            async for page in w.bulk_search("fever", threshold=0.4):
                ...

    Create it inside the running event loop that uses it.
    """

    def __init__(self, target: str | None = None, *, token: str | None = None, tls: bool | None = None,
                 tls_ca: str | None = None, tls_cert: str | None = None, tls_key: str | None = None,
                 tls_server_name: str | None = None, timeout: float = DEFAULT_TIMEOUT_S,
                 retry: RetryPolicy | None = None, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 settings: ClientSettings | None = None, read_your_writes: bool = True) -> None:
        super().__init__(target, token, tls, tls_ca, tls_cert, tls_key, tls_server_name, timeout, retry,
                         max_message_bytes, settings, read_your_writes)
        if self._credentials is None:
            self.channel = grpc.aio.insecure_channel(self.target, options=self._options)
        else:
            self.channel = grpc.aio.secure_channel(self.target, self._credentials, options=self._options)
        #: The raw gRPC stub, for calls this client does not wrap (no retries, protobuf in and out).
        self.stub = gateway_pb2_grpc.GatewayStub(self.channel)

    async def _unary(self, method: Any, request: Any, timeout: float | None) -> Any:
        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await method(request, timeout=max(0.001, deadline.remaining()), metadata=self.metadata)
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
            await asyncio.sleep(self.retry.wait_before_retry(err, attempt, deadline))

    async def search(self, query: str, *, k: int = 0, window: int = 0, rerank: bool | None = None,
                     retrieval: str = "hybrid", fusion: str = "", rrf_k: int = 0, mrl_dim: int = 0,
                     filters: Mapping[str, Any] | None = None, no_cache: bool = False, nprobe: int = 0,
                     ef_search: int = 0, write_token: str = "", vector: Sequence[float] | None = None,
                     vector_model: str = "", rerank_depth: int = 0, timeout: float | None = None) -> SearchResult:
        """Precision search; see `WinnowClient.search`."""
        req = rq.search_request(query, k=k, window=window, rerank=rerank, retrieval=retrieval, fusion=fusion,
                                rrf_k=rrf_k, mrl_dim=mrl_dim, filters=filters, no_cache=no_cache, nprobe=nprobe,
                                ef_search=ef_search, write_token=self._read_token(write_token), vector=vector,
                                vector_model=vector_model, rerank_depth=rerank_depth)
        return self._observed(SearchResult.from_proto(await self._unary(self.stub.Search, req, timeout)))

    async def bulk_search(self, query: str, *, threshold: float, page_size: int = 0, max_results: int = 0,
                          mrl_dim: int = 0, filters: Mapping[str, Any] | None = None, nprobe: int = 0,
                          ef_search: int = 0, cursor: str = "", write_token: str = "",
                          vector: Sequence[float] | None = None, vector_model: str = "",
                          timeout: float | None = None) -> AsyncIterator[BulkPage]:
        """Bulk search, page by page, resumed after the last page on UNAVAILABLE; see `WinnowClient.bulk_search`."""
        req = rq.bulk_request(query, threshold=threshold, page_size=page_size, max_results=max_results,
                              mrl_dim=mrl_dim, filters=filters, nprobe=nprobe, ef_search=ef_search, cursor=cursor,
                              write_token=self._read_token(write_token), vector=vector, vector_model=vector_model)
        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            attempt += 1
            call = self.stub.BulkSearch(req, timeout=max(0.001, deadline.remaining()), metadata=self.metadata)
            received = False
            try:
                async for msg in call:
                    page = BulkPage.from_proto(msg)
                    received = True
                    if page.cursor:
                        req.cursor = page.cursor
                    attempt = 0
                    yield page
                return
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
            finally:
                call.cancel()
            if received and not req.cursor:
                raise err
            await asyncio.sleep(self.retry.wait_before_retry(err, max(attempt, 1), deadline))

    async def limits(self, refresh: bool = False, timeout: float | None = None) -> Limits:
        """The gateway's request limits, fetched once and cached."""
        if self._limits is None or refresh:
            try:
                resp = await self._unary(self.stub.ClusterInfo, pb.ClusterInfoRequest(), timeout)
                self._limits = limits_from_info(resp)
            except WinnowError as err:
                if not unimplemented(err):
                    raise
                self._limits = Limits()
        return self._limits

    async def _limits_for(self, msgs: list[Any], timeout: float | None) -> Limits:
        if self._limits is None and len(msgs) <= _SMALL_WRITE_DOCS and \
                sum(m.ByteSize() if hasattr(m, "ByteSize") else len(m) for m in msgs) <= _SMALL_WRITE_BYTES:
            return Limits()
        return await self.limits(timeout=timeout)

    async def upsert(self, documents: Iterable[Any], *, vector_model: str = "",
                     timeout: float | None = None) -> WriteResult:
        """Insert or replace documents, split to the server's limits; see `WinnowClient.upsert`."""
        msgs = rq.documents(documents)
        if not msgs:
            return sum_writes([], "upserted")
        limits, refreshed = await self._limits_for(msgs, timeout), False
        while True:
            responses = []
            try:
                for chunk in rq.split_documents(msgs, limits):
                    responses.append(await self._unary(self.stub.Upsert, pb.UpsertRequest(documents=chunk, vector_model=vector_model),
                                                       timeout))
                return self._remember(sum_writes(responses, "upserted"))
            except WinnowError as err:
                if responses or refreshed or not is_over_limit(err):
                    raise
                limits, refreshed = await self.limits(refresh=True, timeout=timeout), True

    async def delete(self, ids: Iterable[str], *, timeout: float | None = None) -> WriteResult:
        """Delete documents by id; see `WinnowClient.delete`."""
        id_list = [str(i) for i in ids]
        if not id_list:
            return sum_writes([], "deleted")
        limits = await self._limits_for(id_list, timeout)
        responses = [await self._unary(self.stub.Delete, pb.DeleteRequest(ids=chunk), timeout)
                     for chunk in rq.split_ids(id_list, limits)]
        return self._remember(sum_writes(responses, "deleted"))

    async def get(self, ids: Iterable[str], *, timeout: float | None = None) -> GetResult:
        """Stored documents by id; see `WinnowClient.get`."""
        id_list = [str(i) for i in ids]
        docs, missing = [], []
        for chunk in rq.split_ids(id_list, await self._limits_for(id_list, timeout)):
            r = await self._unary(self.stub.Get, pb.GetRequest(ids=chunk), timeout)
            docs += [rq.document_from_hit(h) for h in r.documents]
            missing += list(r.missing)
        return GetResult(documents=docs, missing=missing)

    async def feedback(self, query_id: str, query: str, judgments: Iterable[Judgment | Mapping[str, Any]], *,
                       timeout: float | None = None) -> FeedbackResult:
        """Record judgments and clicks of one query's results; see `WinnowClient.feedback`."""
        items = fb.judgments(query_id, query, judgments)
        limits, refreshed = await self._limits_for(items, timeout), False
        while True:
            responses = []
            try:
                for req in fb.feedback_requests(query_id, query, items, limits):
                    responses.append(await self._unary(self.stub.Feedback, req, timeout))
                return fb.sum_feedback(responses)
            except WinnowError as err:
                if responses or refreshed or not is_over_limit(err):
                    raise
                limits, refreshed = await self.limits(refresh=True, timeout=timeout), True

    async def export_feedback(self, *, after_seq: int = 0,
                              timeout: float | None = None) -> AsyncIterator[FeedbackRecord]:
        """Every recorded judgment and click, resumed after the last record on UNAVAILABLE; see
        `WinnowClient.export_feedback`."""
        req = pb.ExportFeedbackRequest(after_seq=after_seq)
        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            attempt += 1
            call = self.stub.ExportFeedback(req, timeout=max(0.001, deadline.remaining()), metadata=self.metadata)
            try:
                async for msg in call:
                    record = FeedbackRecord.from_proto(msg)
                    req.after_seq = record.seq
                    attempt = 0
                    yield record
                return
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
            finally:
                call.cancel()
            await asyncio.sleep(self.retry.wait_before_retry(err, max(attempt, 1), deadline))

    async def info(self, *, timeout: float | None = None) -> ClusterInfo:
        """See `WinnowClient.info`."""
        resp = await self._unary(self.stub.ClusterInfo, pb.ClusterInfoRequest(), timeout)
        self._limits = limits_from_info(resp)
        return ClusterInfo.from_proto(resp)

    async def healthy(self, *, timeout: float = 2.0) -> bool:
        """True when the gateway's grpc.health.v1 says SERVING."""
        try:
            resp = await health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(),
                                                                        timeout=timeout)
        except grpc.RpcError:
            return False
        return resp.status == health_pb2.HealthCheckResponse.SERVING

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> "AsyncWinnowClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
