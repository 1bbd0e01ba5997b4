"""What the embedder and reranker cores share: a model executor behind the micro-batcher, a pre-processing
executor, the model-info gauge, the health probe, warm-up, close and the request timings. Never imports grpc.

A model core subclasses `ModelCore` and supplies the batch computation (`compute`, run on the model thread) and
`probe_once` (a tiny real forward pass, also run on the model thread). Both services' steps use one vocabulary:
`prepare` (tokenise, off the model thread), `forward` (one micro-batch on the model thread), `finish` (per
request, cheap).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from winnow.common import metrics
from winnow.common.batcher import BatchLimits, ItemTiming, MicroBatcher, summarize
from winnow.models.loading import Placement

I = TypeVar("I")  # noqa: E741 - prepared input
O = TypeVar("O")  # noqa: E741 - per-input model output
T = TypeVar("T")


class ModelCore(Generic[I, O]):
    """One model on one executor thread, fed by the shared micro-batcher; a second thread prepares inputs."""

    def __init__(self, service: str, compute: Callable[[list[I]], Sequence[O]], *, model_id: str,
                 placement: Placement, limits: BatchLimits, scorer: str = "",
                 warmup_error: str = "warm-up forward pass failed") -> None:
        self.service = service
        self.warmup_error = warmup_error  # the warm-up's message when the probe fails
        self._model_pool = ThreadPoolExecutor(1, thread_name_prefix=f"{service}-model")
        self._pre_pool = ThreadPoolExecutor(1, thread_name_prefix=f"{service}-tokenize")
        self.batcher: MicroBatcher[I, O] = MicroBatcher(
            service, compute, self._model_pool, max_batch_size=limits.max_batch_size,
            max_wait_ms=limits.max_wait_ms, max_batch_tokens=limits.max_batch_tokens, max_queue=limits.max_queue,
        )
        metrics.MODEL_INFO.labels(service, model_id, placement.device, placement.dtype, scorer).set(1)

    async def prepare_off_loop(self, fn: Callable[..., T], *args) -> T:
        """Run a `prepare` step on the pre-processing thread (tokenisers are not free on the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(self._pre_pool, fn, *args)

    def timings(self, out: Sequence[tuple[O, ItemTiming]], start: float, prepared: float,
                batched: float) -> dict[str, float]:
        """A request's timings (ms): tokenize, queue, inference, total; also recorded as metrics."""
        timings = summarize([t for _, t in out], (batched - prepared) * 1000.0)
        timings.pop("batches")
        timings["tokenize"] = (prepared - start) * 1000.0
        timings["total"] = (time.perf_counter() - start) * 1000.0
        metrics.observe_timings(self.service, timings)
        return timings

    def count_truncated(self, n: int) -> None:
        if n:
            metrics.TRUNCATED_INPUTS.labels(self.service).inc(n)

    def probe_once(self) -> bool:
        """A tiny real forward pass (runs on the model thread); True when the model answers sensibly."""
        raise NotImplementedError

    async def probe(self) -> bool:
        """Health: `probe_once` on the model executor, so it touches the model the requests use."""
        return await asyncio.get_running_loop().run_in_executor(self._model_pool, self.probe_once)

    async def warmup(self) -> None:
        """Start the batcher in this loop and run a forward pass so the first request is not slow."""
        self.batcher.start()
        if not await self.probe():
            raise RuntimeError(f"{self.service} {self.warmup_error}")

    async def close(self) -> None:
        """Stop the batcher and the executors."""
        await self.batcher.stop()
        self._model_pool.shutdown(wait=True)
        self._pre_pool.shutdown(wait=True)
