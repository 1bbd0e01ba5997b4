"""The gateway's search core, precision mode: cache → embed → fan out → fuse → rerank → top k, dense, lexical or
hybrid; bulk mode (`SearchCore.bulk`) streams from `bulk.bulk_pages`; `payloads` fetches the final hits' payloads.

Every degradation is reported, never silent: shards that fail are listed in the coverage; a reranker that fails
leaves the first-stage order, flagged; a cache that fails is skipped (metrics). No gRPC in here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np

from winnow.common import metrics, tracing
from winnow.common.deadline import Deadline
from winnow.common.errors import DeadlineExceeded, InvalidArgument, Overloaded, Unavailable, short
from winnow.services.gateway import fusion
from winnow.services.gateway.bulk import BulkPage, bulk_pages
from winnow.services.gateway.cache import ResultCache
from winnow.services.gateway.consistency import encode_token, required_seqs, satisfies
from winnow.services.gateway.cursor import Position
from winnow.services.gateway.ltr import LtrStage, final_order
from winnow.services.gateway.topology import FixedShards, ShardLayout, ShardTopology, as_topology
from winnow.services.gateway.model import Candidate, Coverage, Fusion, Mode, SearchOptions, SearchResult, stable_digest
from winnow.services.gateway.payloads import fetch_payloads
from winnow.services.gateway.ports import EmbedderPort, RerankerPort, Hit, ShardPort, ShardQuery
from winnow.services.gateway.stages import SERVICE, ms_since
from winnow.services.gateway.vectors import VectorSpace, space_of

log = logging.getLogger(__name__)


@dataclass
class PipelineConfig:
    rerank_batch_size: int = 80
    dense_weight: float = 0.5
    stats_timeout_s: float = 0.5
    collection_model: str = ""  # the model of the collection's vectors; "" = the embedder's
    payloads: str = "inline"  # inline: shards send payloads with every candidate; final: fetched for the returned hits



class SearchCore:
    def __init__(self, embedder: EmbedderPort, shards: list[ShardPort] | ShardTopology | FixedShards,
                 reranker: RerankerPort | None, cache: ResultCache, config: PipelineConfig | None = None,
                 encode: Callable[[SearchResult], bytes] = lambda r: r.to_json().encode(),
                 ltr: LtrStage | None = None) -> None:
        self.embedder = embedder
        self.topology = as_topology(shards)  # every query uses the layout current when it started
        self.reranker = reranker
        self.cache = cache
        self.config = config or PipelineConfig()
        self.encode = encode  # the cache stores answers in this form (the gateway: serialized SearchResponse)
        self.ltr = ltr  # the optional final stage; its label keys the cache with the models
        self.models = {"embedder": "", "reranker": "", **({"ltr": ltr.label} if ltr else {})}
        self.dimension = 0  # of the collection's vectors: the shards' (learned once, see refresh_models)

    @property
    def space(self) -> VectorSpace:
        """What caller vectors must be: the collection's model and dimension."""
        return space_of(self.config.collection_model, self.models["embedder"], self.dimension)

    @property
    def shards(self) -> list[ShardPort]:
        return self.topology.shards

    async def refresh_models(self, timeout: float = 2.0) -> bool:
        """Learn the model versions (part of every cache key) and the vector dimension. True when the embedder
        answered."""
        ok = True
        try:
            info = await self.embedder.describe(timeout)
            self.models["embedder"] = str(info.get("model", ""))
        except Exception:  # noqa: BLE001
            ok = False
        if not self.dimension:
            stats = await asyncio.gather(*(s.stats(timeout) for s in self.shards), return_exceptions=True)
            dims = [st.dimension for st in stats if not isinstance(st, BaseException) and st.dimension]
            self.dimension = dims[0] if dims else 0
        if self.reranker is not None:
            try:
                info = await self.reranker.describe(timeout)
                self.models["reranker"] = f"{info.get('model', '')}/{info.get('scorer', '')}"
            except Exception:  # noqa: BLE001 - reranker down only degrades searches
                pass
        metrics.set_build_info(SERVICE, self.models["embedder"], self.models["reranker"])
        return ok

    # -- precision mode ---------------------------------------------------------------------------------------

    async def search(self, opts: SearchOptions, deadline: Deadline) -> SearchResult:
        with self.topology.current().use() as layout:
            return await self._search(opts, deadline, layout)

    async def _search(self, opts: SearchOptions, deadline: Deadline, layout: ShardLayout) -> SearchResult:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        required, unmet = required_seqs(opts.token_layout, opts.token_seqs, layout.id, len(layout.shards))
        with tracing.span("cache", service=SERVICE):
            t = time.perf_counter()
            seqs = None if opts.no_cache else await self._seqs(layout, deadline)
            # A hit must be at least as fresh as the newest replica, and as the caller's token.
            key = self._key(opts, layout, seqs) if seqs is not None and satisfies(seqs, required) else None
            cached = await self.cache.get(key) if key else None
            timings["cache"] = ms_since(t)
        if cached is not None:
            timings["total"] = ms_since(t0)
            metrics.observe_timings(SERVICE, timings)
            return SearchResult([], Coverage(), False, cache_hit=True, timings_ms=timings, payload=cached)
        compute = lambda: self._compute(opts, deadline, timings, layout, required, unmet)  # noqa: E731
        if key is None:
            result = await compute()
        else:
            result, shared = await self.cache.single_flight(key, compute)
            if shared:  # computed once for several identical concurrent requests
                result = dataclasses.replace(result, cache_hit=True, timings_ms=dict(timings))
            elif (result.coverage.complete and (result.reranked or not opts.rerank) and not result.consistency_unmet
                  and not result.dense_skipped_reason and result.served_seqs):  # degraded answers are never cached
                # Keyed on what it was served at: a later lookup hits only while that is the newest data.
                self.cache.put(self._key(opts, layout, result.served_seqs), self.encode(result))
        result.timings_ms["total"] = ms_since(t0)
        metrics.observe_timings(SERVICE, result.timings_ms)
        metrics.COVERAGE.observe(result.coverage.ratio)
        metrics.SEARCH_RESULTS.labels(Mode.PRECISION.value).observe(len(result.hits))
        return result

    async def _seqs(self, layout: ShardLayout, deadline: Deadline) -> dict[int, int] | None:
        """Per partition, the newest sequence it can serve; None (no caching) when that cannot be known."""
        if self.cache.backend is None:
            return None
        seqs = layout.seqs() if isinstance(self.topology, ShardTopology) else None
        if seqs is None:  # no sequence streams (in-process shards): ask every shard
            timeout = deadline.timeout(fraction=0.2, cap=self.config.stats_timeout_s)
            stats = await asyncio.gather(*(s.stats(timeout) for s in layout.shards), return_exceptions=True)
            if any(isinstance(s, BaseException) for s in stats):
                return None
            seqs = {p: s.generation for p, s in enumerate(stats)}  # type: ignore[union-attr]
        return seqs

    def _key(self, opts: SearchOptions, layout: ShardLayout, seqs: dict[int, int]) -> str:
        """Request + layout + every partition's sequence + model versions."""
        return stable_digest({"q": opts.cache_material(), "layout": layout.id, "seqs": sorted(seqs.items()),
                              "models": self.models})

    async def _compute(self, opts: SearchOptions, deadline: Deadline, timings: dict[str, float],
                       layout: ShardLayout, required: dict[int, int], unmet: list[str]) -> SearchResult:
        degraded: list[str] = []
        candidates, coverage, served, owner = await self._first_stage(opts, deadline, timings, opts.window, layout,
                                                                      required, unmet, degraded)
        # payloads=final: they travel only for what is returned (or reranked); inline: they came with the lists.
        candidates = await fetch_payloads(candidates if opts.rerank else candidates[: opts.k], owner, layout,
                                          deadline, coverage, timings)
        reranked, reason = False, "no candidates" if opts.rerank else ""
        if opts.rerank and candidates:
            reranked, reason = await self._rerank(opts.query, candidates, deadline, timings, opts.rerank_depth)
        final = final_order(self.ltr, candidates, opts, reranked, reason, self.models["reranker"], timings)
        return SearchResult(
            hits=final.hits[: opts.k], coverage=coverage, reranked=reranked, rerank_skipped_reason=final.reason,
            timings_ms=timings, model=self.models["embedder"], reranker=final.scorer,
            served_at=encode_token(layout.id, served), consistency_unmet="; ".join(unmet),
            served_seqs=served if coverage.complete else {}, dense_skipped_reason="; ".join(degraded),
        )

    async def _embed_query(self, query: str, deadline: Deadline, timings: dict[str, float]) -> np.ndarray:
        t = time.perf_counter()
        with tracing.span("embed", service=SERVICE):
            vec = (await self.embedder.embed([query], query=True, timeout=deadline.timeout(fraction=0.5)))[0]
        timings["embed"] = ms_since(t)
        return vec

    async def _first_stage(self, opts: SearchOptions, deadline: Deadline, timings: dict[str, float],
                           window: int, layout: ShardLayout, required: dict[int, int], unmet: list[str],
                           degraded: list[str] | None = None,
                           ) -> tuple[list[Candidate], Coverage, dict[int, int], dict[str, int]]:
        """The fused top `window` (payloads unless payloads=final), the coverage, the sequences served at, and
        which partition each candidate came from. Hybrid with the embedder down or late falls back to BM25 alone,
        the reason appended to `degraded`; dense-only has no fallback and fails."""
        if not layout.shards:
            raise Unavailable("no shard is known yet (discovery has not found any)")
        vector = opts.vector
        if vector is None and opts.retrieval.dense:
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
            # Packed (score, id) lists; payloads inline only for each list's top `need` (what the answer can
            # use when fusion keeps the order), the rest fetched after fusion if it reaches them (payloads=final:
            # all of them fetched).
            include_payloads=False, packed=True,
            payload_top=0 if self.config.payloads == "final" else (window if opts.rerank else min(opts.k, window)),
        )
        t = time.perf_counter()
        timeout = deadline.timeout(fraction=0.6 if opts.rerank else 0.9)
        results = await asyncio.gather(
            *(self._shard_search(s, dataclasses.replace(query, min_applied_seq=required.get(p, 0)), timeout)
              for p, s in enumerate(layout.shards)), return_exceptions=True)
        timings["search"] = ms_since(t)
        coverage = Coverage(asked=len(layout.shards))
        served: dict[int, int] = {}
        dense_lists, lexical_lists = [], []
        owner: dict[str, int] = {}
        payloads: dict[str, Hit] = {}
        for p, (shard, res) in enumerate(zip(layout.shards, results)):
            if isinstance(res, InvalidArgument):  # the request is bad, not the shard: say so, never UNAVAILABLE
                raise res
            if isinstance(res, BaseException):
                coverage.failed.append(f"{shard.name}: {short(res)}")
                continue
            coverage.answered += 1
            served[p] = res.applied_seq or res.generation
            if res.consistency_unmet:
                unmet.append(res.consistency_unmet)
            d, lx = res.pairs(False), res.pairs(True)
            dense_lists.append(d)
            lexical_lists.append(lx)
            owner.update(dict.fromkeys([i for _, i in d], p))
            owner.update(dict.fromkeys([i for _, i in lx], p))
            payloads.update(res.payload_map())
        if coverage.answered == 0:
            raise Unavailable(f"no shard answered: {'; '.join(coverage.failed)}")
        t = time.perf_counter()
        dense = [Candidate(id=i, dense_score=s) for s, i in fusion.merge_top(dense_lists, window)]
        lexical = [Candidate(id=i, lexical_score=s) for s, i in fusion.merge_top(lexical_lists, window)]
        timings["merge"] = ms_since(t)
        t = time.perf_counter()
        if vector is None and opts.retrieval.lexical:
            fused = fusion.single_list(lexical, window, False)
        elif opts.retrieval.dense and opts.retrieval.lexical:
            if opts.fusion is Fusion.RRF:
                fused = fusion.rrf(dense, lexical, k=opts.rrf_k, window=window, dense_weight=self.config.dense_weight)
            else:
                fused = fusion.convex(dense, lexical, alpha=self.config.dense_weight, window=window)
        else:
            fused = fusion.single_list(dense if opts.retrieval.dense else lexical, window, opts.retrieval.dense)
        for c in fused:
            h = payloads.get(c.id)
            if h is not None:
                c.text, c.metadata_json = h.text, h.metadata_json
        timings["fusion"] = ms_since(t)
        return fused, coverage, served, owner

    async def _shard_search(self, shard: ShardPort, query: ShardQuery, timeout: float | None):
        metrics.init_shard(shard.name)
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
                      timings: dict[str, float], depth: int = 0) -> tuple[bool, str]:
        if self.reranker is None:
            metrics.RERANK_FALLBACK.labels("not_configured").inc()
            return False, "no reranker configured"
        if deadline.expired():
            metrics.RERANK_FALLBACK.labels("deadline").inc()
            return False, "no time left for the reranker"
        # A cascade cut (depth) is over the whole window, so a request that names one goes in one call.
        size = len(candidates) if depth else max(1, self.config.rerank_batch_size)
        batches = [candidates[i:i + size] for i in range(0, len(candidates), size)]
        timeout = deadline.timeout(fraction=0.9)
        t = time.perf_counter()
        with tracing.span("rerank", service=SERVICE, candidates=len(candidates)):
            results = await asyncio.gather(*(self.reranker.rerank(query, b, timeout, depth) for b in batches),
                                           return_exceptions=True)
        timings["rerank"] = ms_since(t)
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

    async def bulk(self, opts: SearchOptions, deadline: Deadline, max_results: int,
                   resume: Position | None = None) -> AsyncIterator[BulkPage]:
        """Every document scoring >= threshold (capped at max_results), merged across shards, in pages.

        `resume`: continue after that position of an earlier stream of the same request (a cursor); page
        numbers, totals and the max_results cap carry on from it.
        """
        with self.topology.current().use() as layout:
            async for page in bulk_pages(opts, deadline, max_results, layout, self._embed_query, resume):
                yield page

