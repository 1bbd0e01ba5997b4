"""The embedder core: validation, tokenisation, micro-batched forward passes, MRL. Never imports grpc."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from winnow.core import metrics
from winnow.core.batcher import MicroBatcher, summarize
from winnow.core.errors import InvalidArgument
from winnow.models.encoder import Encoder, PreparedText

log = logging.getLogger(__name__)

SERVICE = "embedder"
KINDS = ("query", "document")


@dataclass(frozen=True, slots=True)
class EmbedResult:
    """Vectors [n, dimension] (unit rows), tokens and truncation per text, and where the time went (ms)."""

    vectors: np.ndarray
    tokens: list[int]
    truncated: list[bool]
    model: str
    dimension: int
    timings_ms: dict[str, float]


class EmbedderCore:
    """Validates requests and runs them through the shared micro-batcher on one model executor."""

    def __init__(self, encoder: Encoder, *, max_texts: int = 1024, max_batch_size: int = 64,
                 max_wait_ms: float = 2.0, max_batch_tokens: int = 16384, max_queue: int = 8192,
                 sub_batch_tokens: int = 0, stall_s: float = 60.0) -> None:
        self.encoder = encoder
        self.max_texts = max_texts
        self._model_pool = ThreadPoolExecutor(1, thread_name_prefix="embedder-model")
        self._pre_pool = ThreadPoolExecutor(1, thread_name_prefix="embedder-tokenize")
        self.batcher: MicroBatcher[PreparedText, np.ndarray] = MicroBatcher(
            SERVICE, self._compute, self._model_pool, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
            max_batch_tokens=max_batch_tokens, max_queue=max_queue,
            sub_batch_tokens=sub_batch_tokens,
        )
        self.stall_s = stall_s
        p = encoder.placement
        metrics.MODEL_INFO.labels(SERVICE, encoder.model_id, p.device, p.dtype, "").set(1)

    def _compute(self, batch: list[PreparedText]) -> list[np.ndarray]:
        return list(self.encoder.encode_core(batch))

    def validate(self, texts: Sequence[str], kind: str, dimension: int) -> int:
        """Check a request; returns the output dimension. Raises InvalidArgument with an actionable message."""
        if kind not in KINDS:
            raise InvalidArgument(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if not texts:
            raise InvalidArgument(f"texts is empty: send 1 to {self.max_texts} non-blank texts")
        if len(texts) > self.max_texts:
            raise InvalidArgument(
                f"{len(texts)} texts in one request; the limit is {self.max_texts} (max_texts): split the request"
            )
        for i, t in enumerate(texts):
            if not t or not t.strip():
                raise InvalidArgument(f"texts[{i}] is empty or whitespace-only: every text must have content")
        return self.encoder.check_dimension(dimension)

    async def embed(self, texts: Sequence[str], kind: str = "document", dimension: int = 0) -> EmbedResult:
        """Embed `texts` (batched with concurrent requests); vectors are unit length at the output dimension."""
        start = time.perf_counter()
        dim = self.validate(texts, kind, dimension)
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(self._pre_pool, self.encoder.encode_pre, list(texts), kind)
        tokenized = time.perf_counter()
        out = await self.batcher.submit_many(prepared, [p.tokens for p in prepared])
        batched = time.perf_counter()
        vectors = self.encoder.encode_post(np.stack([v for v, _ in out]), dim)
        truncated = [p.truncated for p in prepared]
        if any(truncated):
            metrics.TRUNCATED_INPUTS.labels(SERVICE).inc(sum(truncated))
        timings = summarize([t for _, t in out], (batched - tokenized) * 1000.0)
        timings.pop("batches")
        timings["tokenize"] = (tokenized - start) * 1000.0
        timings["total"] = (time.perf_counter() - start) * 1000.0
        metrics.observe_timings(SERVICE, timings)
        return EmbedResult(vectors, [p.tokens for p in prepared], truncated, self.encoder.model_id, dim, timings)

    async def probe(self) -> bool | str:
        """Readiness without waiting behind model work: busy and progressing = ready; stuck = not; idle = one
        tiny forward pass (the model thread is free, so it runs at once) that must give a finite unit vector."""
        stuck = self.batcher.busy_for()
        if stuck > self.stall_s:
            return f"the model has had work but finished nothing for {stuck:.0f}s"
        if not self.batcher.idle:
            return True
        return await self._forward_probe()

    async def _forward_probe(self) -> bool:
        loop = asyncio.get_running_loop()
        vec = await loop.run_in_executor(
            self._model_pool, lambda: self.encoder.encode_core(self.encoder.encode_pre(["health probe"]))
        )
        return bool(vec.shape == (1, self.encoder.dimension) and np.isfinite(vec).all())

    async def warmup(self) -> None:
        """Start the batcher in this loop and run a forward pass so the first request is not slow."""
        self.batcher.start()
        if not await self._forward_probe():
            raise RuntimeError("embedder warm-up forward pass returned a bad vector")

    async def close(self) -> None:
        """Stop the batcher and the executors."""
        await self.batcher.stop()
        self._model_pool.shutdown(wait=True)
        self._pre_pool.shutdown(wait=True)
