"""The gateway's search core: cache → embed → fan out → fuse → rerank → top k, and bulk streaming.

Every degradation is reported, never silent: shards that fail are listed in the coverage; a reranker that fails
leaves the first-stage order, flagged; a cache that fails is skipped (metrics). No gRPC in here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np

from winnow.common import metrics, tracing
from winnow.common.deadline import Deadline
from winnow.common.errors import DeadlineExceeded, InvalidArgument, Overloaded, Unavailable, short
from winnow.services.gateway import fusion
from winnow.services.gateway.cache import ResultCache
from winnow.services.gateway.generations import GenerationTracker
from winnow.services.gateway.model import Candidate, Coverage, Fusion, Mode, SearchOptions, SearchResult, stable_digest
from winnow.services.gateway.ports import EmbedderPort, RerankerPort, Hit, ShardPort, ShardQuery, ShardRangeQuery

log = logging.getLogger(__name__)
SERVICE = "gateway"


@dataclass
class PipelineConfig:
    rerank_batch_size: int = 80
    dense_weight: float = 0.5
    stats_timeout_s: float = 0.5


@dataclass
class BulkPage:
    hits: list[Candidate]
    page: int
    last: bool
    total: int
    coverage: Coverage
    timings_ms: dict[str, float] = field(default_factory=dict)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class SearchCore:
    def __init__(self, embedder: EmbedderPort, shards: list[ShardPort], reranker: RerankerPort | None,
                 cache: ResultCache, config: PipelineConfig | None = None,
                 generations: GenerationTracker | None = None,
                 encode: Callable[[SearchResult], bytes] = lambda r: r.to_json().encode()) -> None:
        self.embedder = embedder
        self.shards = shards
        self.reranker = reranker
        self.cache = cache
        self.config = config or PipelineConfig()
        self.generations = generations or GenerationTracker(shards)
        self.encode = encode  # the cache stores answers in this form (the gateway: serialized SearchResponse)
        self.models = {"embedder": "", "reranker": ""}
        # The embedder's output dimension and MRL dimensions, once known: the edge checks mrl_dim against them.
        self.dimension = 0
        self.allowed_dims: tuple[int, ...] = ()

    async def refresh_models(self, timeout: float = 2.0) -> bool:
        """Learn the model versions (part of every cache key). True when the embedder answered."""
        ok = True
        try:
            info = await self.embedder.describe(timeout)
            self.models["embedder"] = str(info.get("model", ""))
            self.dimension = int(info.get("dimension", 0) or 0)
            self.allowed_dims = tuple(int(d) for d in info.get("allowed_dimensions", ()))
        except Exception:  # noqa: BLE001
            ok = False
        if self.reranker is not None:
            try:
                info = await self.reranker.describe(timeout)
                self.models["reranker"] = f"{info.get('model', '')}/{info.get('scorer', '')}"
            except Exception:  # noqa: BLE001 - reranker down only degrades searches
                pass
        return ok

    # -- precision mode ---------------------------------------------------------------------------------------

    async def search(self, opts: SearchOptions, deadline: Deadline) -> SearchResult:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        with tracing.span("cache", service=SERVICE):
            t = time.perf_counter()
            key = None if opts.no_cache else await self._cache_key(opts, deadline)
            cached = await self.cache.get(key) if key else None
            timings["cache"] = _ms(t)
        if cached is not None:
            timings["total"] = _ms(t0)
            return SearchResult([], Coverage(), False, cache_hit=True, timings_ms=timings, payload=cached)
        if key is None:
            result = await self._compute(opts, deadline, timings)
        else:
            result, shared = await self.cache.single_flight(key, lambda: self._compute(opts, deadline, timings))
            if shared:  # computed once for several identical concurrent requests
                result = dataclasses.replace(result, cache_hit=True, timings_ms=dict(timings))
            elif result.coverage.complete and (result.reranked or not opts.rerank) and not result.dense_skipped_reason:
                self.cache.put(key, self.encode(result))  # degraded answers are never cached
        result.timings_ms["total"] = _ms(t0)
        metrics.COVERAGE.observe(result.coverage.ratio)
        metrics.SEARCH_RESULTS.labels(Mode.PRECISION.value).observe(len(result.hits))
        return result

    async def _cache_key(self, opts: SearchOptions, deadline: Deadline) -> str | None:
        """Request + every shard's generation + model versions; None (no caching) if a shard is unreachable."""
        if self.cache.backend is None:
            return None
        generations = self.generations.snapshot()
        if generations is None:  # some shard's generation stream is down: ask every shard
            timeout = deadline.timeout(fraction=0.2, cap=self.config.stats_timeout_s)
            stats = await asyncio.gather(*(s.stats(timeout) for s in self.shards), return_exceptions=True)
            if any(isinstance(s, BaseException) for s in stats):
                return None
            generations = [(s.name, s.generation) for s in stats]  # type: ignore[union-attr]
        return stable_digest({"q": opts.cache_material(), "gen": generations, "models": self.models})

    async def _compute(self, opts: SearchOptions, deadline: Deadline, timings: dict[str, float]) -> SearchResult:
        degraded: list[str] = []
        candidates, coverage = await self._first_stage(opts, deadline, timings, opts.window, degraded)
        reranked, reason = False, ""
        if opts.rerank and candidates:
            reranked, reason = await self._rerank(opts.query, candidates, deadline, timings)
        elif opts.rerank:
            reason = "no candidates"
        hits = candidates
        if reranked:
            hits = sorted(candidates, key=lambda c: (-(c.rerank_score or 0.0), c.first_stage_rank))
        return SearchResult(
            hits=hits[: opts.k], coverage=coverage, reranked=reranked, rerank_skipped_reason=reason,
            timings_ms=timings, model=self.models["embedder"], reranker=self.models["reranker"] if reranked else "",
            dense_skipped_reason=degraded[0] if degraded else "",
        )

    async def _embed_query(self, query: str, deadline: Deadline, timings: dict[str, float]) -> np.ndarray:
        t = time.perf_counter()
        with tracing.span("embed", service=SERVICE):
            vec = (await self.embedder.embed([query], query=True, timeout=deadline.timeout(fraction=0.5)))[0]
        timings["embed"] = _ms(t)
        return vec

    async def _first_stage(self, opts: SearchOptions, deadline: Deadline, timings: dict[str, float],
                           window: int, degraded: list[str] | None = None) -> tuple[list[Candidate], Coverage]:
        """Dense and/or BM25 across the shards, fused. Hybrid with the embedder down or late falls back to BM25
        alone, the reason appended to `degraded`; dense-only has no fallback and fails."""
        vector = None
        if opts.retrieval.dense:
            try:
                vector = await self._embed_query(opts.query, deadline, timings)
            except (Unavailable, DeadlineExceeded, Overloaded, TimeoutError) as exc:
                if not opts.retrieval.lexical or degraded is None:
                    raise
                metrics.DENSE_FALLBACK.inc()
                log.warning("embedder failed; answering from BM25 alone", extra={"fields": {"error": short(exc)}})
                degraded.append(f"embedder failed: {short(exc)}; answered from BM25 alone")
        query = ShardQuery(
            vector=vector, k=window, query_text=opts.query if opts.retrieval.lexical else "", lexical_k=window,
            filters=opts.filters, coarse_dim=opts.mrl_dim, nprobe=opts.nprobe, ef_search=opts.ef_search,
        )
        t = time.perf_counter()
        timeout = deadline.timeout(fraction=0.6 if opts.rerank else 0.9)
        results = await asyncio.gather(*(self._shard_search(s, query, timeout) for s in self.shards),
                                       return_exceptions=True)
        timings["search"] = _ms(t)
        coverage = Coverage(asked=len(self.shards))
        dense_lists, lexical_lists = [], []
        for shard, res in zip(self.shards, results):
            if isinstance(res, InvalidArgument):  # the request is bad, not the shard: say so, never UNAVAILABLE
                raise res
            if isinstance(res, BaseException):
                coverage.failed.append(f"{shard.name}: {short(res)}")
                continue
            coverage.answered += 1
            dense_lists.append([(h.score, h.id, h) for h in res.dense])
            lexical_lists.append([(h.score, h.id, h) for h in res.lexical])
        if coverage.answered == 0:
            raise Unavailable(f"no shard answered: {'; '.join(coverage.failed)}")
        t = time.perf_counter()
        dense = [_cand(h, dense=True) for _, _, h in fusion.merge_top(dense_lists, window)]
        lexical = [_cand(h, dense=False) for _, _, h in fusion.merge_top(lexical_lists, window)]
        if vector is None and opts.retrieval.lexical:
            fused = fusion.single_list(lexical, window, False)
        elif opts.retrieval.dense and opts.retrieval.lexical:
            if opts.fusion is Fusion.RRF:
                fused = fusion.rrf(dense, lexical, k=opts.rrf_k, window=window, dense_weight=self.config.dense_weight)
            else:
                fused = fusion.convex(dense, lexical, alpha=self.config.dense_weight, window=window)
        else:
            fused = fusion.single_list(dense if opts.retrieval.dense else lexical, window, opts.retrieval.dense)
        timings["merge"] = _ms(t)
        return fused, coverage

    async def _shard_search(self, shard: ShardPort, query: ShardQuery, timeout: float | None):
        with tracing.span("shard_search", service=SERVICE, shard=shard.name):
            try:
                res = await shard.search(query, timeout)
            except DeadlineExceeded:
                metrics.SHARD_REQUESTS.labels(shard.name, "timeout").inc()
                raise
            except Exception:
                metrics.SHARD_REQUESTS.labels(shard.name, "error").inc()
                raise
        metrics.SHARD_REQUESTS.labels(shard.name, "ok").inc()
        return res

    async def _rerank(self, query: str, candidates: list[Candidate], deadline: Deadline,
                      timings: dict[str, float]) -> tuple[bool, str]:
        if self.reranker is None:
            metrics.RERANK_FALLBACK.labels("not_configured").inc()
            return False, "no reranker configured"
        if deadline.expired():
            metrics.RERANK_FALLBACK.labels("deadline").inc()
            return False, "no time left for the reranker"
        size = max(1, self.config.rerank_batch_size)
        batches = [candidates[i:i + size] for i in range(0, len(candidates), size)]
        timeout = deadline.timeout(fraction=0.9)
        t = time.perf_counter()
        with tracing.span("rerank", service=SERVICE, candidates=len(candidates)):
            results = await asyncio.gather(*(self.reranker.rerank(query, b, timeout) for b in batches),
                                           return_exceptions=True)
        timings["rerank"] = _ms(t)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            exc = failures[0]
            kind = "deadline" if isinstance(exc, (DeadlineExceeded, TimeoutError)) else "error"
            metrics.RERANK_FALLBACK.labels(kind).inc()
            log.warning("reranker failed; returning first-stage order", extra={"fields": {"error": short(exc)}})
            return False, f"reranker failed: {short(exc)}"
        for batch, scores in zip(batches, results):
            for cand, score in zip(batch, scores):  # type: ignore[arg-type]
                cand.rerank_score = float(score)
        return True, ""

    # -- bulk mode --------------------------------------------------------------------------------------------

    async def bulk(self, opts: SearchOptions, deadline: Deadline, max_results: int) -> AsyncIterator[BulkPage]:
        """Every document scoring >= threshold (capped at max_results), merged across shards, in pages."""
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        vector = await self._embed_query(opts.query, deadline, timings)
        query = ShardRangeQuery(
            vector=vector, threshold=opts.threshold, page_size=opts.page_size, filters=opts.filters,
            coarse_dim=opts.mrl_dim, max_results=max_results, nprobe=opts.nprobe, ef_search=opts.ef_search,
        )
        coverage = Coverage(asked=len(self.shards))
        merged = _merge_streams([s.range_search(query, deadline.timeout(fraction=0.95)) for s in self.shards],
                                [s.name for s in self.shards], coverage)
        page, buf, total = 0, [], 0
        async for hit in merged:
            buf.append(hit)
            total += 1
            if len(buf) >= opts.page_size:
                timings["total"] = _ms(t0)
                yield BulkPage(buf, page, False, total, coverage, dict(timings))
                page, buf = page + 1, []
            if total >= max_results:
                break
        await merged.aclose()
        if coverage.answered == 0 and coverage.asked:
            raise Unavailable(f"no shard answered: {'; '.join(coverage.failed)}")
        timings["total"] = _ms(t0)
        metrics.COVERAGE.observe(coverage.ratio)
        metrics.SEARCH_RESULTS.labels(Mode.BULK.value).observe(total)
        yield BulkPage(buf, page, True, total, coverage, dict(timings))


def _cand(h: Hit, dense: bool) -> Candidate:
    c = Candidate(id=h.id, text=h.text, metadata_json=h.metadata_json)
    if dense:
        c.dense_score = h.score
    else:
        c.lexical_score = h.score
    return c


async def _merge_streams(streams: list[AsyncIterator[list[Hit]]], names: list[str],
                         coverage: Coverage) -> AsyncIterator[Candidate]:
    """K-way merge of per-shard streams, each sorted best first, into one stream sorted best first.

    A shard that fails before its first page is left out; one that fails later stops contributing. Both are
    reported in `coverage`.
    """
    buffers: list[list[Hit]] = [[] for _ in streams]
    alive = [True] * len(streams)
    failed = [False] * len(streams)

    async def pull(i: int) -> None:
        try:
            while alive[i] and not buffers[i]:
                page = await anext(streams[i])
                buffers[i] = list(reversed(page))  # pop() from the end = best first
        except StopAsyncIteration:
            alive[i] = False
        except Exception as exc:  # noqa: BLE001 - recorded in coverage
            failed[i] = True
            alive[i] = False
            coverage.failed.append(f"{names[i]}: {short(exc)}")
        coverage.answered = len(streams) - sum(failed)

    await asyncio.gather(*(pull(i) for i in range(len(streams))))
    heap = [(-buffers[i][-1].score, buffers[i][-1].id, i) for i in range(len(streams)) if buffers[i]]
    heapq.heapify(heap)
    try:
        while heap:
            _, _, i = heapq.heappop(heap)
            hit = buffers[i].pop()
            c = Candidate(id=hit.id, text=hit.text, metadata_json=hit.metadata_json, dense_score=hit.score,
                          first_stage_score=hit.score)
            yield c
            if not buffers[i]:
                await pull(i)
            if buffers[i]:
                heapq.heappush(heap, (-buffers[i][-1].score, buffers[i][-1].id, i))
    finally:
        for s in streams:
            aclose = getattr(s, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # noqa: BLE001
                    pass
