"""The gRPC edge of the index shard: decode, run the core in an executor, encode. No logic of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import grpc

from winnow.api.internal.index.v1 import index_pb2 as pb
from winnow.api.internal.index.v1 import index_pb2_grpc as pb_grpc
from winnow.common import metrics
from winnow.services.index import convert
from winnow.services.index.model import WriteResult
from winnow.services.index.shard import Shard
from winnow.services.index.vectors import set_omp_threads

T = TypeVar("T")
SERVICE = "index"


class IndexShardServicer(pb_grpc.IndexShardServicer):
    """Writes run on one writer thread (they are serialised anyway); reads on a pool of search threads."""

    def __init__(self, shard: Shard, search_threads: int = 2, omp_threads: int = 1) -> None:
        self.shard = shard
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="index-write")  # builds keep FAISS's OpenMP default
        self.readers = ThreadPoolExecutor(
            search_threads, thread_name_prefix="index-search", initializer=set_omp_threads, initargs=(omp_threads,)
        )
        # Health probes get their own thread: behind a queue of searches they would time out and read as down.
        self.prober = ThreadPoolExecutor(1, thread_name_prefix="index-probe", initializer=set_omp_threads,
                                         initargs=(omp_threads,))
        self._written = asyncio.Event()  # set (and replaced) after every write: wakes the Watch streams

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[[], T]) -> tuple[T, float]:
        """Run `fn` off the loop; returns its result and the ms it waited for a thread."""
        submitted = time.perf_counter()
        started: list[float] = []

        def call() -> T:
            started.append(time.perf_counter())
            return fn()

        result = await asyncio.get_running_loop().run_in_executor(pool, call)
        return result, round((started[0] - submitted) * 1000, 3)

    def _gauges(self, generation: int) -> None:
        """After a write: publish the gauges and wake every Watch stream."""
        sid = self.shard.s.shard_id
        metrics.INDEX_GENERATION.labels(sid).set(generation)
        metrics.INDEX_DOCUMENTS.labels(sid).set(self.shard.state.count)
        written, self._written = self._written, asyncio.Event()
        written.set()

    async def _write(self, fn: Callable[[], WriteResult]) -> WriteResult:
        """One write on the writer thread: its queue time in the timings, metrics, gauges, Watch wake-up."""
        result, queued = await self._run(self.writer, fn)
        result.timings_ms["queue"] = queued
        metrics.observe_timings(SERVICE, result.timings_ms)
        self._gauges(result.generation)
        return result

    async def Upsert(self, request: pb.UpsertRequest, context: grpc.aio.ServicerContext) -> pb.UpsertResponse:
        docs = convert.docs_from_proto(request)
        return convert.upsert_result_to_proto(await self._write(lambda: self.shard.upsert(docs)))

    async def Delete(self, request: pb.DeleteRequest, context: grpc.aio.ServicerContext) -> pb.DeleteResponse:
        ids = list(request.ids)
        return convert.delete_result_to_proto(await self._write(lambda: self.shard.delete(ids)))

    async def Get(self, request: pb.GetRequest, context: grpc.aio.ServicerContext) -> pb.GetResponse:
        ids = list(request.ids)
        (found, missing), _ = await self._run(self.readers, lambda: self.shard.get(ids))
        return convert.get_result_to_proto(found, missing)

    async def Search(self, request: pb.SearchRequest, context: grpc.aio.ServicerContext) -> pb.SearchResponse:
        query = convert.search_query_from_proto(request)
        result, queued = await self._run(self.readers, lambda: self.shard.search(query))
        result.timings_ms["queue"] = queued
        metrics.observe_timings(SERVICE, result.timings_ms)
        return convert.shard_result_to_proto(result)

    async def RangeSearch(self, request: pb.RangeSearchRequest, context: grpc.aio.ServicerContext):
        query = convert.range_query_from_proto(request)
        pages, queued = await self._run(self.readers, lambda: list(self.shard.range_search(query)))
        for page in pages:
            if page.page == 0:
                page.timings_ms["queue"] = queued
                metrics.observe_timings(SERVICE, page.timings_ms)
            yield convert.range_page_to_proto(page)

    async def Stats(self, request: pb.StatsRequest, context: grpc.aio.ServicerContext) -> pb.StatsResponse:
        stats, _ = await self._run(self.readers, self.shard.stats)
        return convert.stats_to_proto(stats)

    async def Train(self, request: pb.TrainRequest, context: grpc.aio.ServicerContext) -> pb.TrainResponse:
        (trained, generation), _ = await self._run(self.writer, self.shard.train)
        self._gauges(generation)
        return convert.train_result_to_proto(trained, generation)

    async def Watch(self, request: pb.WatchRequest, context: grpc.aio.ServicerContext):
        """The generation (and count) now, then again after every write, until the caller goes away."""
        last = None
        while True:
            written = self._written  # taken before reading, so a write landing in between is not missed
            now = (self.shard.generation, self.shard.state.count)  # two plain reads; each write bumps generation
            if now != last:
                last = now
                yield convert.watch_event_to_proto(*now)
            await written.wait()

    async def probe(self) -> bool:
        """Health watcher probe: a real search through the index on a search thread."""
        ok, _ = await self._run(self.prober, self.shard.probe)
        return ok

    def shutdown(self) -> None:
        self.writer.shutdown(wait=True)
        self.readers.shutdown(wait=True)
        self.prober.shutdown(wait=True)
