"""The public gRPC edge: decode, call the core, encode. Errors are mapped by winnow.rpc.server."""

from __future__ import annotations

import asyncio

from winnow.api.gateway.v1 import gateway_pb2_grpc
from winnow.common.deadline import Deadline
from winnow.rpc.channels import deadline_from_context
from winnow.rpc.interceptor import Classifier
from winnow.common import buildinfo
from winnow.common.errors import DeadlineExceeded
from winnow.common.logs import request_id_var
from winnow.services.gateway import convert, convert_feedback, convert_search, cursor
from winnow.services.gateway.feedback import FeedbackCore
from winnow.services.gateway.model import stable_digest
from winnow.services.gateway.search import SearchCore
from winnow.services.gateway.settings import GatewaySettings
from winnow.services.gateway.writes import WriteCore


# Of protos/winnow/api/gateway/v1: 1.1 added Struct metadata, BulkSearchRequest, cursors; 1.2 added Feedback and
# ExportFeedback (judgments and clicks per query, exported as training pairs) and SearchRequest.rerank_depth.
API_VERSION = "1.2"


def admission_classes(s: GatewaySettings) -> Classifier:
    """Search requests that will not be reranked get their own admission gate (`max_concurrent_first_stage`):
    they cost a few ms against a rerank's tens to hundreds, so one gate sized for reranks would refuse them."""
    reranks = bool(s.reranker)

    def classify(method: str, request) -> tuple[str, int] | None:
        if method != "Search" or not s.max_concurrent_first_stage:
            return None
        reranked = reranks and (request.rerank if request.HasField("rerank") else bool(request.query))
        return None if reranked else ("Search/first-stage", s.max_concurrent_first_stage)

    return classify


class GatewayServicer(gateway_pb2_grpc.GatewayServicer):
    def __init__(self, search: SearchCore, writes: WriteCore, settings: GatewaySettings,
                 feedback: FeedbackCore | None = None) -> None:
        self.search_core = search
        self.writes = writes
        self.s = settings
        self.feedback = feedback or FeedbackCore(None)  # none: Feedback answers UNAVAILABLE (no log)

    def _deadline(self, context) -> Deadline:
        deadline = deadline_from_context(context, self.s.default_timeout_s)
        if deadline.expired():
            raise DeadlineExceeded("the request's deadline had passed before the search started")
        return deadline

    async def Search(self, request, context):
        opts = convert_search.search_options_from_proto(request, self.s, self.search_core.space)
        result = await self.search_core.search(opts, self._deadline(context))
        return convert_search.search_result_to_proto(result, request_id_var.get())

    async def BulkSearch(self, request, context):
        opts = convert_search.bulk_options_from_proto(request, self.s, self.search_core.space)
        fingerprint = stable_digest(opts.cache_material() | {"page_size": 0})  # a cursor may change page size
        resume = cursor.decode(request.cursor, fingerprint)
        last = request.cursor
        async for page in self.search_core.bulk(opts, self._deadline(context), opts.max_results, resume):
            if page.hits:
                tail = page.hits[-1]
                last = cursor.encode(cursor.Position(tail.score, tail.id, page.total, page.page + 1), fingerprint)
            yield convert_search.bulk_page_to_proto(page, request_id_var.get(), last)

    async def Upsert(self, request, context):
        docs = convert.write_documents_from_proto(request, self.s, self.search_core.space)
        n, timings, token = await self.writes.upsert(docs, self._deadline(context))
        return convert.upsert_result_to_proto(n, timings, request_id_var.get(), token)

    async def Delete(self, request, context):
        ids = convert.ids_from_proto(request.ids, self.s, "delete")
        n, timings, token = await self.writes.delete(ids, self._deadline(context))
        return convert.delete_result_to_proto(n, timings, request_id_var.get(), token)

    async def Get(self, request, context):
        ids = convert.ids_from_proto(request.ids, self.s, "get")
        found, missing = await self.writes.get(ids, self._deadline(context))
        return convert.get_result_to_proto(found, missing)

    async def Feedback(self, request, context):
        batch = convert_feedback.feedback_from_proto(request, self.s)
        recorded = await self.feedback.record(batch, self._deadline(context))
        return convert_feedback.feedback_result_to_proto(recorded, request_id_var.get())

    async def ExportFeedback(self, request, context):
        async for record in self.feedback.export(self._deadline(context), request.after_seq):
            yield convert_feedback.feedback_record_to_proto(record)

    async def ClusterInfo(self, request, context):
        core = self.search_core
        layout = core.topology.current()
        timeout = self._deadline(context).timeout(cap=2.0)
        replicas = await asyncio.gather(*(_replica_stats(s, timeout) for s in layout.shards))
        emb, rr = await asyncio.gather(core.embedder.describe(timeout),
                                       core.reranker.describe(timeout) if core.reranker else _none(),
                                       return_exceptions=True)
        return convert.cluster_info_to_proto(
            [(shard.target, reps) for shard, reps in zip(layout.shards, replicas)],
            emb if isinstance(emb, dict) else {}, rr if isinstance(rr, dict) else {}, core.cache.kind, self.s,
            layout.id, core.space, buildinfo.VERSION, API_VERSION,
        )


async def _replica_stats(shard, timeout: float | None):
    """Every replica's own Stats (or its error); a shard without replicas counts as its own one replica."""
    if hasattr(shard, "replica_stats"):
        return await shard.replica_stats(timeout)
    try:
        return [(shard.target, await shard.stats(timeout))]
    except Exception as exc:  # noqa: BLE001 - reported in ClusterInfo
        return [(shard.target, exc)]


async def _none():
    return {}
