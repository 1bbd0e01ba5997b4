"""The embedder core: validation, tokenisation, micro-batched forward passes, MRL. Never imports grpc."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from winnow.common.batcher import BatchLimits
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
    """Validates texts, tokenises them off the loop and embeds them in micro-batches shared with concurrent
    requests; the vectors come back unit length at the requested (MRL) dimension."""

    def __init__(self, encoder: Encoder, *, max_texts: int = 1024, limits: BatchLimits = BatchLimits()) -> None:
        self.encoder = encoder
        self.max_texts = max_texts
        super().__init__(SERVICE, self._compute, model_id=encoder.model_id, placement=encoder.placement,
                         limits=limits, warmup_error="warm-up forward pass returned a bad vector")

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

    async def warmup(self) -> None:
        """The probe, then real requests at the shapes traffic brings (a one-word query up to a batch of long
        documents), so the first requests after a start do not pay for kernel selection and allocator growth."""
        await super().warmup()
        words = "effect of low dose aspirin on cardiovascular outcomes in older adults with diabetes".split()
        for n_words, n_texts in ((3, 1), (12, 1), (30, 1), (60, 4), (180, 8), (12, 16)):
            text = " ".join(words[i % len(words)] for i in range(n_words))
            # Never more texts than a request may carry (a warm-up past max_texts would fail the start).
            await self.embed([text] * min(n_texts, self.max_texts), kind="query" if n_texts == 1 else "document")

    def probe_once(self) -> bool:
        """One tiny forward pass; True if it returns a finite unit vector of the model's dimension."""
        vec = self.encoder.forward(self.encoder.prepare(["health probe"]))
        return bool(vec.shape == (1, self.encoder.dimension) and np.isfinite(vec).all())
