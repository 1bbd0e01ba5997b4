"""The reranker core: validation, pair preparation, micro-batched scoring, sort and top_n. Never imports grpc."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from winnow.common.batcher import BatchLimits
from winnow.common.errors import InvalidArgument
from winnow.models.scorer import Candidate, PreparedPair, Scorer
from winnow.services.model_core import ModelCore

SERVICE = "reranker"


@dataclass(frozen=True, slots=True)
class Hit:
    """One reranked candidate: its id, final score, position in the request and whether its text was cut."""

    id: str
    score: float
    index: int
    truncated: bool


@dataclass(frozen=True, slots=True)
class RerankResult:
    results: list[Hit]
    model: str
    scorer: str
    timings_ms: dict[str, float]


class RerankerCore(ModelCore[PreparedPair, float]):
    """Validates requests and scores their pairs through the shared micro-batcher on one model executor."""

    def __init__(self, scorer: Scorer, *, max_candidates: int = 512,
                 limits: BatchLimits = BatchLimits(max_batch_size=128, max_batch_tokens=32768),
                 cascade_depth: int = 0, cheap: Scorer | None = None) -> None:
        self.scorer = scorer
        self.max_candidates = max_candidates
        self.cascade_depth = cascade_depth
        self.cheap = cheap
        # What answers, as reported (and so in the gateway's cache key): the scorer, and the cascade when there is one.
        self.scorer_name = self._name(cascade_depth)
        super().__init__(SERVICE, scorer.forward, model_id=scorer.model_id, placement=scorer.placement,
                         limits=limits, scorer=scorer.name, warmup_error="warm-up returned a bad score")

    def validate(self, query: str, candidates: Sequence[Candidate], top_n: int) -> None:
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

    async def rerank(self, query: str, candidates: Sequence[Candidate], top_n: int = 0,
                     depth: int = 0) -> RerankResult:
        """Score every candidate against `query`; best first, ties kept in first-stage then request order.

        With a cascade (`depth`, else the `cascade_depth` setting, > 0 and more candidates than that), only the top
        `depth` by the previous stage (the `cheap` scorer when set, else the first stage) reach the scorer; they
        come back first, ordered by it, and the rest follow in the previous stage's order with lower scores."""
        start = time.perf_counter()
        self.validate(query, candidates, top_n)
        depth = depth or self.cascade_depth
        if depth and len(candidates) > depth:
            return await self._cascade(query, list(candidates), top_n, start, depth)
        return await self._score_all(query, candidates, top_n, start)

    async def _cascade(self, query: str, candidates: list[Candidate], top_n: int, start: float,
                       depth: int) -> RerankResult:
        big = len(candidates) + 1
        extra: dict[str, float] = {}
        if self.cheap is not None:
            t = time.perf_counter()
            cheap_pairs = await self.prepare_off_loop(self.cheap.prepare, query, candidates)
            raw = await asyncio.get_running_loop().run_in_executor(self._model_pool, self.cheap.forward, cheap_pairs)
            prev = self.cheap.finish(candidates, raw)
            order = sorted(range(len(candidates)), key=lambda i: (-prev[i], candidates[i].first_stage_rank or big, i))
            extra["cheap"] = (time.perf_counter() - t) * 1000.0
        else:
            order = sorted(range(len(candidates)), key=lambda i: (candidates[i].first_stage_rank or big, i))
            prev = [candidates[i].first_stage_score for i in range(len(candidates))]
        head, tail = order[:depth], order[depth:]
        # The scorer fuses with the previous stage: its score and rank stand in for the first stage's.
        staged = [Candidate(candidates[i].id, candidates[i].text, r + 1, float(prev[i])) for r, i in enumerate(head)]
        inner = await self._score_all(query, staged, 0, start)
        low = min((h.score for h in inner.results), default=0.0)
        results = [Hit(h.id, h.score, head[h.index], h.truncated) for h in inner.results]
        results += [Hit(candidates[i].id, low - 1.0 - j, i, False) for j, i in enumerate(tail)]
        if top_n:
            results = results[:top_n]
        timings = {**inner.timings_ms, **extra, "cascade_depth": float(depth),
                   "total": (time.perf_counter() - start) * 1000.0}
        return RerankResult(results, inner.model, self._name(depth), timings)

    def _name(self, depth: int) -> str:
        """The scorer's name, and the cascade cut when there is one (`cross-encoder-top30-after-...`)."""
        if not depth:
            return self.scorer.name
        return self.scorer.name + f"-top{depth}" + (f"-after-{self.cheap.name}" if self.cheap is not None else "")

    async def _score_all(self, query: str, candidates: Sequence[Candidate], top_n: int,
                         start: float) -> RerankResult:
        pairs = await self.prepare_off_loop(self.scorer.prepare, query, list(candidates))
        prepared = time.perf_counter()
        out = await self.batcher.submit_many(pairs, [p.cost for p in pairs])
        batched = time.perf_counter()
        scores = self.scorer.finish(candidates, [s for s, _ in out])
        big = len(candidates) + 1
        order = sorted(range(len(candidates)),
                       key=lambda i: (-scores[i], candidates[i].first_stage_rank or big, i))
        if top_n:
            order = order[:top_n]
        self.count_truncated(sum(p.truncated for p in pairs))
        timings = self.timings(out, start, prepared, batched)
        results = [Hit(candidates[i].id, float(scores[i]), i, pairs[i].truncated) for i in order]
        return RerankResult(results, self.scorer.model_id, self.scorer_name, timings)

    async def warmup(self) -> None:
        """The probe, then a real window of candidates of document length, so the first searches after a start
        do not pay for kernel selection and allocator growth."""
        await super().warmup()
        words = "effect of low dose aspirin on cardiovascular outcomes in older adults with diabetes".split()
        doc = " ".join(words[i % len(words)] for i in range(180))
        for n in (8, 80):  # never more candidates than a request may carry (that would fail the start)
            n = min(n, self.max_candidates)
            await self.rerank("does aspirin help the heart", [Candidate(f"w{i}", doc) for i in range(n)])

    async def close(self) -> None:
        """Stop batching, then let the scorer release what it holds (e.g. flush its token-vector store)."""
        await super().close()
        self.scorer.close()
        if self.cheap is not None:
            self.cheap.close()

    def probe_once(self) -> bool:
        """Score one tiny pair (touches the model); True if the score is a number."""
        scores = self.scorer.forward(self.scorer.prepare("health probe", [Candidate("probe", "health probe document")]))
        return len(scores) == 1 and scores[0] == scores[0]  # not NaN
