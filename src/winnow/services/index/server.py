"""The gRPC edge of one index shard replica: decode, run the core in an executor, encode. No logic of its own.
Writes do not arrive here: the replica's `LogFollower` applies its log partition on the writer thread."""

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
from winnow.common.cpus import available_cpus
from winnow.common.errors import FailedPrecondition
from winnow.services.index import convert
from winnow.services.index.follower import LogFollower
from winnow.services.index.model import ReplicaStatus, SearchQuery, ShardResult
from winnow.services.index.shard import Shard
from winnow.services.index.vectors import set_omp_threads

T = TypeVar("T")
SERVICE = "index"


class IndexShardServicer(pb_grpc.IndexShardServicer):
    """Writes run on one writer thread (they are serialised anyway); reads on a pool of search threads."""

    def __init__(self, shard: Shard, search_threads: int = 2, omp_threads: int = 1,
                 max_consistency_wait_s: float = 2.0, inline_search_ms: float = 0.0) -> None:
        self.shard = shard
        # Searches expected to take under inline_search_ms run on the event loop itself (see _inline).
        self.inline_search_ms = inline_search_ms
        self.search_ms = 0.0  # EWMA of recent searches' own run time, either path
        if inline_search_ms > 0:
            set_omp_threads(omp_threads)  # this thread (the event loop's) runs them: FAISS threads as a reader's
        self.follower: LogFollower | None = None  # set by __main__ once the log is wired
        self.max_consistency_wait_s = max_consistency_wait_s
        # Builds (adds, training, compaction) use every CPU this process may use: a container's limit, not the
        # node's core count (FAISS's OpenMP default), which would start a thread per node core.
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="index-write", initializer=set_omp_threads,
                                         initargs=(available_cpus(),))
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

    def applied(self) -> None:
        """After a batch of the log was applied: publish the gauges and wake every Watch stream."""
        sid = self.shard.s.shard_id
        metrics.INDEX_GENERATION.labels(sid).set(self.shard.generation)
        metrics.INDEX_DOCUMENTS.labels(sid).set(self.shard.state.count)
        if self.follower is not None:
            metrics.INDEX_LOG_LAG.labels(sid).set(max(self.follower.lag, 0))
        written, self._written = self._written, asyncio.Event()
        written.set()

    async def _consistent(self, seq: int, context: grpc.aio.ServicerContext) -> None:
        """Read-your-writes: wait (bounded) until this replica applied `seq`, else FAILED_PRECONDITION."""
        if seq <= self.shard.generation or self.follower is None:
            return
        left = context.time_remaining()
        wait = self.max_consistency_wait_s if left is None else max(0.0, min(self.max_consistency_wait_s, left - 0.05))
        if not await self.follower.wait_applied(seq, wait):
            raise FailedPrecondition(f"replica at seq {self.shard.generation}, needs {seq}")

    async def Get(self, request: pb.GetRequest, context: grpc.aio.ServicerContext) -> pb.GetResponse:
        ids = list(request.ids)
        (found, missing), _ = await self._run(self.readers, lambda: self.shard.get(ids))
        return convert.get_result_to_proto(found, missing)

    async def Search(self, request: pb.SearchRequest, context: grpc.aio.ServicerContext) -> pb.SearchResponse:
        query = convert.search_query_from_proto(request)
        await self._consistent(request.min_applied_seq, context)
        result = self._inline(query)
        if result is None:
            result, queued = await self._run(self.readers, lambda: self._timed(lambda: self.shard.search(query)))
            result.timings_ms["queue"] = queued
        metrics.observe_timings(SERVICE, result.timings_ms)
        return convert.shard_result_to_proto(result, packed=request.packed)

    def _inline(self, query: SearchQuery) -> ShardResult | None:
        """The search on the event loop, when recent searches took under `inline_search_ms` and this one need
        not wait (no write holding the lock, no BM25 rebuild due); else None. On a small shard the two thread
        hand-offs cost more than the search (served p50 0.87x on a 20k-vector shard, `winnow bench index`;
        docs/gateway.md). A shard whose searches grow slower moves them back to the search threads."""
        if self.inline_search_ms <= 0 or self.search_ms > self.inline_search_ms:
            return None
        return self._timed(lambda: self.shard.search(query, wait=False))

    def _timed(self, fn: Callable[[], T]) -> T:
        """Run a search and learn its run time (a BM25 rebuild it did first left out: inline ones never do)."""
        t = time.perf_counter()
        result = fn()
        if result is not None:
            ms = (time.perf_counter() - t) * 1000 - result.timings_ms.get("bm25_rebuild", 0.0)
            self.search_ms = ms if not self.search_ms else 0.8 * self.search_ms + 0.2 * ms
        return result

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
        return convert.stats_to_proto(stats, self.status())

    def status(self) -> ReplicaStatus:
        if self.follower is not None:
            return self.follower.status()
        return ReplicaStatus(0, self.shard.s.shard_id, "", True, 0, False)

    async def Train(self, request: pb.TrainRequest, context: grpc.aio.ServicerContext) -> pb.TrainResponse:
        (trained, generation), _ = await self._run(self.writer, self.shard.train)
        return convert.train_result_to_proto(trained, generation)

    async def Watch(self, request: pb.WatchRequest, context: grpc.aio.ServicerContext):
        """The applied sequence (and count) now, then again after every applied batch, until the caller goes away."""
        last = None
        while True:
            written = self._written  # taken before reading, so a write landing in between is not missed
            now = (self.shard.generation, self.shard.state.count)  # two plain reads; each write bumps generation
            if now != last:
                last = now
                yield convert.watch_event_to_proto(*now)
            await written.wait()

    async def probe(self) -> bool | str:
        """Health watcher probe: caught up with the log once, and a real search through the index answers (on
        its own thread, so a queue of searches cannot make it late)."""
        if self.follower is not None and not self.follower.caught_up:
            return "not caught up with its log partition yet"
        ok, _ = await self._run(self.prober, self.shard.probe)
        return ok

    def shutdown(self) -> None:
        self.writer.shutdown(wait=True)
        self.readers.shutdown(wait=True)
        self.prober.shutdown(wait=True)
