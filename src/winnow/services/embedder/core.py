"""The embedder core: validation, tokenisation, micro-batched forward passes, MRL. Never imports grpc."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from winnow.common.errors import InvalidArgument
from winnow.models.encoder import Encoder, PreparedText
from winnow.services.model_core import ModelCore

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


class EmbedderCore(ModelCore[PreparedText, np.ndarray]):
    """Validates requests and runs them through the shared micro-batcher on one model executor."""

    warmup_error = "warm-up forward pass returned a bad vector"

    def __init__(self, encoder: Encoder, *, max_texts: int = 1024, max_batch_size: int = 64,
                 max_wait_ms: float = 2.0, max_batch_tokens: int = 16384, max_queue: int = 8192,
                 sub_batch_tokens: int = 0, stall_s: float = 60.0) -> None:
        self.encoder = encoder
        self.max_texts = max_texts
        super().__init__(SERVICE, self._compute, model_id=encoder.model_id, placement=encoder.placement,
                         max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                         max_batch_tokens=max_batch_tokens, max_queue=max_queue,
                         sub_batch_tokens=sub_batch_tokens, stall_s=stall_s)

    def _compute(self, batch: list[PreparedText]) -> list[np.ndarray]:
        return list(self.encoder.forward(batch))

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
        prepared = await self.prepare_off_loop(self.encoder.prepare, list(texts), kind)
        tokenized = time.perf_counter()
        out = await self.batcher.submit_many(prepared, [p.tokens for p in prepared])
        batched = time.perf_counter()
        vectors = self.encoder.finish(np.stack([v for v, _ in out]), dim)
        truncated = [p.truncated for p in prepared]
        self.count_truncated(sum(truncated))
        timings = self.timings(out, start, tokenized, batched)
        return EmbedResult(vectors, [p.tokens for p in prepared], truncated, self.encoder.model_id, dim, timings)

    def probe_once(self) -> bool:
        """One tiny forward pass; True if it returns a finite unit vector of the model's dimension."""
        vec = self.encoder.forward(self.encoder.prepare(["health probe"]))
        return bool(vec.shape == (1, self.encoder.dimension) and np.isfinite(vec).all())
