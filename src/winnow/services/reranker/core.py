"""The reranker core: validation, pair preparation, micro-batched scoring, sort and top_n. Never imports grpc."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from winnow.core import metrics
from winnow.core.batcher import MicroBatcher, summarize
from winnow.core.errors import InvalidArgument
from winnow.models.scorer import PreparedPair, RerankCandidate, Scorer

SERVICE = "reranker"


@dataclass(frozen=True, slots=True)
class Scored:
    """One reranked candidate: its id, final score, position in the request and whether it was cut."""

    id: str
    score: float
    index: int
    truncated: bool


@dataclass(frozen=True, slots=True)
class RerankResult:
    results: list[Scored]
    model: str
    scorer: str
    timings_ms: dict[str, float]


class RerankerCore:
    """Validates requests and scores their pairs through the shared micro-batcher on one model executor."""

    def __init__(self, scorer: Scorer, *, max_candidates: int = 512, max_batch_size: int = 128,
                 max_wait_ms: float = 2.0, max_batch_tokens: int = 32768, max_queue: int = 8192,
                 sub_batch_tokens: int = 0, stall_s: float = 60.0) -> None:
        self.scorer = scorer
        self.max_candidates = max_candidates
        self._model_pool = ThreadPoolExecutor(1, thread_name_prefix="reranker-model")
        self._pre_pool = ThreadPoolExecutor(1, thread_name_prefix="reranker-tokenize")
        self.batcher: MicroBatcher[PreparedPair, float] = MicroBatcher(
            SERVICE, scorer.score_batch, self._model_pool, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
            max_batch_tokens=max_batch_tokens, max_queue=max_queue,
            sub_batch_tokens=sub_batch_tokens,
        )
        self.stall_s = stall_s
        p = scorer.placement
        metrics.MODEL_INFO.labels(SERVICE, scorer.model_id, p.device, p.dtype, scorer.name).set(1)

    def validate(self, query: str, candidates: Sequence[RerankCandidate], top_n: int) -> None:
        """Raise InvalidArgument with an actionable message for a bad request."""
        if not query or not query.strip():
            raise InvalidArgument("query is empty or whitespace-only")
        if not candidates:
            raise InvalidArgument(f"candidates is empty: send 1 to {self.max_candidates} candidates")
        if len(candidates) > self.max_candidates:
            raise InvalidArgument(f"{len(candidates)} candidates; the limit is {self.max_candidates} "
                                  "(max_candidates): send fewer or split them over several requests")
        if top_n < 0:
            raise InvalidArgument(f"top_n is {top_n}; use 0 (all) or a positive number")
        for i, c in enumerate(candidates):
            if not c.text or not c.text.strip():
                raise InvalidArgument(f"candidates[{i}] (id {c.id!r}) has no text: every candidate needs its text")

    async def rerank(self, query: str, candidates: Sequence[RerankCandidate], top_n: int = 0) -> RerankResult:
        """Score every candidate against `query`; best first, ties kept in first-stage then request order."""
        start = time.perf_counter()
        self.validate(query, candidates, top_n)
        loop = asyncio.get_running_loop()
        pairs = await loop.run_in_executor(self._pre_pool, self.scorer.prepare, query, list(candidates))
        prepared = time.perf_counter()
        out = await self.batcher.submit_many(pairs, [p.cost for p in pairs])
        batched = time.perf_counter()
        scores = self.scorer.finalize(candidates, [s for s, _ in out])
        big = len(candidates) + 1
        order = sorted(range(len(candidates)),
                       key=lambda i: (-scores[i], candidates[i].first_stage_rank or big, i))
        if top_n:
            order = order[:top_n]
        truncated = sum(p.truncated for p in pairs)
        if truncated:
            metrics.TRUNCATED_INPUTS.labels(SERVICE).inc(truncated)
        timings = summarize([t for _, t in out], (batched - prepared) * 1000.0)
        timings.pop("batches")
        timings["tokenize"] = (prepared - start) * 1000.0
        timings["total"] = (time.perf_counter() - start) * 1000.0
        metrics.observe_timings(SERVICE, timings)
        results = [Scored(candidates[i].id, float(scores[i]), i, pairs[i].truncated) for i in order]
        return RerankResult(results, self.scorer.model_id, self.scorer.name, timings)

    async def probe(self) -> bool | str:
        """Readiness without waiting behind model work (see EmbedderCore.probe): busy and progressing = ready,
        stuck = not, idle = score one tiny pair on the (free) model thread."""
        stuck = self.batcher.busy_for()
        if stuck > self.stall_s:
            return f"the model has had work but finished nothing for {stuck:.0f}s"
        if not self.batcher.idle:
            return True
        return await self._forward_probe()

    async def _forward_probe(self) -> bool:
        loop = asyncio.get_running_loop()
        probe = [RerankCandidate("probe", "health probe document")]

        def run() -> list[float]:
            return self.scorer.score_batch(self.scorer.prepare("health probe", probe))

        scores = await loop.run_in_executor(self._model_pool, run)
        return len(scores) == 1 and scores[0] == scores[0]  # not NaN

    async def warmup(self) -> None:
        """Start the batcher in this loop and run one forward pass."""
        self.batcher.start()
        if not await self._forward_probe():
            raise RuntimeError("reranker warm-up returned a bad score")

    async def close(self) -> None:
        await self.batcher.stop()
        self._model_pool.shutdown(wait=True)
        self._pre_pool.shutdown(wait=True)
