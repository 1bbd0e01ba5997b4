"""The public gRPC edge: decode, call the core, encode. Errors are mapped by winnow.core.server."""

from __future__ import annotations

import asyncio

from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.api.gateway.v1 import gateway_pb2_grpc
from winnow.core.channels import Deadline
from winnow.core.errors import DeadlineExceeded, InvalidArgument
from winnow.core.logs import request_id_var
from winnow.services.gateway import convert
from winnow.services.gateway.model import Mode
from winnow.services.gateway.search import SearchCore
from winnow.services.gateway.settings import GatewaySettings
from winnow.services.gateway.writes import WriteCore


class GatewayServicer(gateway_pb2_grpc.GatewayServicer):
    def __init__(self, search: SearchCore, writes: WriteCore, settings: GatewaySettings) -> None:
        self.search_core = search
        self.writes = writes
        self.s = settings

    def _deadline(self, context) -> Deadline:
        deadline = Deadline.from_context(context, self.s.default_timeout_s)
        if deadline.expired():
            raise DeadlineExceeded("the request's deadline had passed before the search started")
        return deadline

    def _options(self, request, mode: Mode):
        core = self.search_core
        return convert.search_options(request, self.s, mode, core.dimension, core.allowed_dims)

    async def Search(self, request, context):
        opts = self._options(request, Mode.PRECISION)
        if opts.mode is Mode.BULK:
            raise InvalidArgument("mode MODE_BULK streams its results: call Gateway.BulkSearch")
        result = await self.search_core.search(opts, self._deadline(context))
        return convert.search_response(result, request_id_var.get())

    async def BulkSearch(self, request, context):
        opts = self._options(request, Mode.BULK)
        if opts.mode is Mode.PRECISION:
            raise InvalidArgument("mode MODE_PRECISION returns one reranked list: call Gateway.Search")
        async for page in self.search_core.bulk(opts, self._deadline(context), opts.max_results):
            yield pb.BulkSearchPage(
                hits=[convert.hit(c) for c in page.hits], page=page.page, last=page.last, total=page.total,
                coverage=convert.coverage(page.coverage), timings_ms=page.timings_ms, request_id=request_id_var.get(),
            )

    async def Upsert(self, request, context):
        docs = convert.write_documents(request, self.s)
        n, timings = await self.writes.upsert(docs, self._deadline(context))
        return pb.UpsertResponse(upserted=n, timings_ms=timings, request_id=request_id_var.get())

    async def Delete(self, request, context):
        ids = convert.ids(request.ids, self.s, "delete")
        n, timings = await self.writes.delete(ids, self._deadline(context))
        return pb.DeleteResponse(deleted=n, timings_ms=timings, request_id=request_id_var.get())

    async def Get(self, request, context):
        ids = convert.ids(request.ids, self.s, "get")
        found, missing = await self.writes.get(ids, self._deadline(context))
        return pb.GetResponse(documents=[convert.hit(c) for c in found], missing=missing)

    async def ClusterInfo(self, request, context):
        core = self.search_core
        timeout = self._deadline(context).timeout(cap=2.0)
        stats = await asyncio.gather(*(s.stats(timeout) for s in core.shards), return_exceptions=True)
        shards = []
        for shard, st in zip(core.shards, stats):
            if isinstance(st, BaseException):
                shards.append(pb.ShardInfo(address=shard.target, healthy=False, error=str(st)))
            else:
                shards.append(pb.ShardInfo(address=shard.target, healthy=True, count=st.count,
                                           generation=st.generation, index_factory=st.index_factory))
        emb, rr = await asyncio.gather(core.embedder.describe(timeout),
                                       core.reranker.describe(timeout) if core.reranker else _none(),
                                       return_exceptions=True)
        emb = emb if isinstance(emb, dict) else {}
        rr = rr if isinstance(rr, dict) else {}
        return pb.ClusterInfoResponse(
            shards=shards, embedder_model=emb.get("model", ""), embedder_device=emb.get("device", ""),
            reranker_model=rr.get("model", ""), reranker_scorer=rr.get("scorer", ""),
            reranker_device=rr.get("device", ""), documents=sum(s.count for s in shards), cache=core.cache.kind,
        )


async def _none():
    return {}
