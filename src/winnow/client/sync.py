"""`WinnowClient`: the blocking client of Winnow's public gateway API."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
from winnow.client.types import BulkPage, ClusterInfo, GetResult, Limits, SearchResult, WriteResult

# Writes this small are sent without first asking the server for its limits (every sane limit allows them;
# a server configured lower answers "over the limit" and the client re-splits).
_SMALL_WRITE_DOCS = 64
_SMALL_WRITE_BYTES = 1 << 20


class WinnowClient(ClientBase):
    """Blocking client. Every call has a deadline (`timeout`, seconds, per request) and is retried on
    UNAVAILABLE / RESOURCE_EXHAUSTED with backoff and jitter (`retry`).

    Connection settings come from the arguments, else from the environment (WINNOW_TARGET, WINNOW_TOKEN,
    WINNOW_TLS, WINNOW_TLS_CA, WINNOW_TLS_CERT, WINNOW_TLS_KEY, WINNOW_TLS_SERVER_NAME), else the defaults
    (127.0.0.1:50050, plaintext, no token). Failed calls raise a `winnow.client.WinnowError` subclass.

    Read-your-writes (`read_your_writes=True`, the default): every search that passes no `write_token` carries
    the merged token of this client's own upserts and deletes, so it sees them (writes are acknowledged by the
    log before the replicas apply them). Pass `read_your_writes=False` for plain eventual consistency.

        with WinnowClient("127.0.0.1:50050") as w:
            result = w.search("does aspirin reduce fever?", k=10)
    """

    def __init__(self, target: str | None = None, *, token: str | None = None, tls: bool | None = None,
                 tls_ca: str | None = None, tls_cert: str | None = None, tls_key: str | None = None,
                 tls_server_name: str | None = None, timeout: float = DEFAULT_TIMEOUT_S,
                 retry: RetryPolicy | None = None, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 settings: ClientSettings | None = None, read_your_writes: bool = True) -> None:
        super().__init__(target, token, tls, tls_ca, tls_cert, tls_key, tls_server_name, timeout, retry,
                         max_message_bytes, settings, read_your_writes)
        if self._credentials is None:
            self.channel = grpc.insecure_channel(self.target, options=self._options)
        else:
            self.channel = grpc.secure_channel(self.target, self._credentials, options=self._options)
        #: The raw gRPC stub, for calls this client does not wrap (no retries, protobuf in and out).
        self.stub = gateway_pb2_grpc.GatewayStub(self.channel)

    # -- plumbing ---------------------------------------------------------------------------------------------

    def _unary(self, method: Any, request: Any, timeout: float | None) -> Any:
        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                return method(request, timeout=max(0.001, deadline.remaining()), metadata=self.metadata)
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
            time.sleep(self.retry.wait_before_retry(err, attempt, deadline))

    # -- search -----------------------------------------------------------------------------------------------

    def search(self, query: str, *, k: int = 0, window: int = 0, rerank: bool | None = None, retrieval: str = "hybrid",
               fusion: str = "", rrf_k: int = 0, mrl_dim: int = 0, filters: Mapping[str, Any] | None = None,
               no_cache: bool = False, nprobe: int = 0, ef_search: int = 0, write_token: str = "",
               vector: Sequence[float] | None = None, vector_model: str = "", rerank_depth: int = 0,
               timeout: float | None = None) -> SearchResult:
        """Precision search: the top `k` (0 = 64) of a `window` (0 = 80) of first-stage candidates, reranked.

        retrieval: "hybrid" (BM25 + dense, fused; default), "dense" or "lexical" (BM25 only).
        fusion: "" (the gateway's default, convex), "convex" or "rrf". filters: {field: value} equality on
        metadata. rerank=False returns the first-stage order. no_cache bypasses the result cache.
        rerank_depth: a cascade for this request: the reranker scores only the window's top N, the rest follow in
        first-stage order (0 = the reranker's own setting).
        write_token: an upsert's / delete's token: answer from replicas that applied that write
        (`result.consistency_unmet` says when it could not be honoured in time).
        """
        req = rq.search_request(query, k=k, window=window, rerank=rerank, retrieval=retrieval, fusion=fusion,
                                rrf_k=rrf_k, mrl_dim=mrl_dim, filters=filters, no_cache=no_cache, nprobe=nprobe,
                                ef_search=ef_search, write_token=self._read_token(write_token), vector=vector,
                                vector_model=vector_model, rerank_depth=rerank_depth)
        return self._observed(SearchResult.from_proto(self._unary(self.stub.Search, req, timeout)))

    def bulk_search(self, query: str, *, threshold: float, page_size: int = 0, max_results: int = 0,
                    mrl_dim: int = 0, filters: Mapping[str, Any] | None = None, nprobe: int = 0,
                    ef_search: int = 0, cursor: str = "", write_token: str = "",
                    vector: Sequence[float] | None = None, vector_model: str = "",
                    timeout: float | None = None) -> Iterator[BulkPage]:
        """Bulk ("find all") search: every document with cosine similarity >= `threshold`, best first, page by
        page (`page_size`, 0 = 256), at most `max_results` (0 = the server's cap). Never reranked.

        A stream cut by UNAVAILABLE / RESOURCE_EXHAUSTED resumes after the last page received (its cursor);
        pass `cursor=page.cursor` to resume one yourself. `timeout` covers the whole stream.
        """
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
                for msg in call:
                    page = BulkPage.from_proto(msg)
                    received = True
                    if page.cursor:
                        req.cursor = page.cursor
                    attempt = 0  # progress: the next failure starts a fresh backoff
                    yield page
                return
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
            finally:
                call.cancel()  # the caller stopped early (or it failed): release the stream
            if received and not req.cursor:
                raise err  # an older gateway without cursors: cannot resume without repeating pages
            time.sleep(self.retry.wait_before_retry(err, max(attempt, 1), deadline))

    # -- writes -----------------------------------------------------------------------------------------------

    def limits(self, refresh: bool = False, timeout: float | None = None) -> Limits:
        """The gateway's request limits (ClusterInfo.limits), fetched once and cached."""
        if self._limits is None or refresh:
            try:
                self._limits = limits_from_info(self._unary(self.stub.ClusterInfo, pb.ClusterInfoRequest(), timeout))
            except WinnowError as err:
                if not unimplemented(err):
                    raise
                self._limits = Limits()
        return self._limits

    def _limits_for(self, msgs: list[Any], timeout: float | None) -> Limits:
        if self._limits is None and len(msgs) <= _SMALL_WRITE_DOCS and \
                sum(m.ByteSize() if hasattr(m, "ByteSize") else len(m) for m in msgs) <= _SMALL_WRITE_BYTES:
            return Limits()
        return self.limits(timeout=timeout)

    def upsert(self, documents: Iterable[Any], *, vector_model: str = "",
               timeout: float | None = None) -> WriteResult:
        """Insert or replace documents: dicts {"id", "text", "metadata" (optional dict)} or `Document`s.

        Checked here first (ids present and unique, text non-blank, metadata a dict), then sent in as many
        requests as the server's limits need (`result.requests`), one after the other; `timeout` applies to
        each. Upserts are idempotent: after a failure, retrying the whole call is safe. A document's "vector"
        is your own embedding (`vector_model` names its model). `result.write_token` reads the write back.
        """
        msgs = rq.documents(documents)
        if not msgs:
            return sum_writes([], "upserted")
        limits, refreshed = self._limits_for(msgs, timeout), False
        while True:
            responses = []
            try:
                for chunk in rq.split_documents(msgs, limits):
                    responses.append(self._unary(self.stub.Upsert, pb.UpsertRequest(documents=chunk, vector_model=vector_model), timeout))
                return self._remember(sum_writes(responses, "upserted"))
            except WinnowError as err:
                if responses or refreshed or not is_over_limit(err):
                    raise
                limits, refreshed = self.limits(refresh=True, timeout=timeout), True

    def delete(self, ids: Iterable[str], *, timeout: float | None = None) -> WriteResult:
        """Delete documents by id (missing ids are not an error); split to the server's limits."""
        id_list = [str(i) for i in ids]
        if not id_list:
            return sum_writes([], "deleted")
        limits = self._limits_for(id_list, timeout)
        responses = [self._unary(self.stub.Delete, pb.DeleteRequest(ids=chunk), timeout)
                     for chunk in rq.split_ids(id_list, limits)]
        return self._remember(sum_writes(responses, "deleted"))

    def get(self, ids: Iterable[str], *, timeout: float | None = None) -> GetResult:
        """Stored documents by id; ids not found are listed in `missing`."""
        id_list = [str(i) for i in ids]
        docs, missing = [], []
        for chunk in rq.split_ids(id_list, self._limits_for(id_list, timeout)):
            r = self._unary(self.stub.Get, pb.GetRequest(ids=chunk), timeout)
            docs += [rq.document_from_hit(h) for h in r.documents]
            missing += list(r.missing)
        return GetResult(documents=docs, missing=missing)

    # -- feedback ---------------------------------------------------------------------------------------------

    def feedback(self, query_id: str, query: str, judgments: Iterable[Judgment | Mapping[str, Any]], *,
                 timeout: float | None = None) -> FeedbackResult:
        """Record what users judged or clicked among one query's results, for training (`export_feedback`).

        query_id: the search's `request_id` or your own id for the query; query: its text. judgments:
        `Judgment(doc_id, relevance)` (graded, 0 = not relevant) or `Judgment.click(doc_id)` (relevance 1 unless
        given), or dicts {"doc_id", "relevance", "kind"}. The latest judgment of a query, document and kind
        replaces the one before; recording is idempotent, so retrying is safe. Checked here first, then split
        to the server's `max_write_docs`.
        """
        items = fb.judgments(query_id, query, judgments)
        limits, refreshed = self._limits_for(items, timeout), False
        while True:
            responses = []
            try:
                for req in fb.feedback_requests(query_id, query, items, limits):
                    responses.append(self._unary(self.stub.Feedback, req, timeout))
                return fb.sum_feedback(responses)
            except WinnowError as err:
                if responses or refreshed or not is_over_limit(err):
                    raise
                limits, refreshed = self.limits(refresh=True, timeout=timeout), True

    def export_feedback(self, *, after_seq: int = 0, timeout: float | None = None) -> Iterator[FeedbackRecord]:
        """Every recorded judgment and click (the latest per query, document and kind), in log order; a stream cut
        by UNAVAILABLE / RESOURCE_EXHAUSTED resumes after the last record received. `timeout` covers the whole
        export. `winnow.client.feedback.training_pairs` turns the records into a judgments file's lines."""
        req = pb.ExportFeedbackRequest(after_seq=after_seq)
        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            attempt += 1
            call = self.stub.ExportFeedback(req, timeout=max(0.001, deadline.remaining()), metadata=self.metadata)
            try:
                for msg in call:
                    record = FeedbackRecord.from_proto(msg)
                    req.after_seq = record.seq
                    attempt = 0  # progress: the next failure starts a fresh backoff
                    yield record
                return
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
            finally:
                call.cancel()
            time.sleep(self.retry.wait_before_retry(err, max(attempt, 1), deadline))

    # -- cluster ----------------------------------------------------------------------------------------------

    def info(self, *, timeout: float | None = None) -> ClusterInfo:
        """Shards, models, document count, cache kind, limits and versions of the cluster behind the gateway."""
        resp = self._unary(self.stub.ClusterInfo, pb.ClusterInfoRequest(), timeout)
        self._limits = limits_from_info(resp)
        return ClusterInfo.from_proto(resp)

    def healthy(self, *, timeout: float = 2.0) -> bool:
        """True when the gateway's grpc.health.v1 says SERVING (no retries: a probe must be quick)."""
        try:
            resp = health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
        return resp.status == health_pb2.HealthCheckResponse.SERVING

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "WinnowClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
