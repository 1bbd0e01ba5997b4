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
        self.stall_s = limits.stall_s
        self._probe_task: asyncio.Task | None = None  # held: a background probe forward pass (see `probe`)
        self._probe_started = 0.0
        self._probe_ok = True
        self._model_pool = ThreadPoolExecutor(1, thread_name_prefix=f"{service}-model")
        self._pre_pool = ThreadPoolExecutor(1, thread_name_prefix=f"{service}-tokenize")
        self.batcher: MicroBatcher[I, O] = MicroBatcher(
            service, compute, self._model_pool, max_batch_size=limits.max_batch_size,
            max_wait_ms=limits.max_wait_ms, max_batch_tokens=limits.max_batch_tokens, max_queue=limits.max_queue,
            sub_batch_tokens=limits.sub_batch_tokens,
        )
        metrics.MODEL_INFO.labels(service, model_id, placement.device, placement.dtype, scorer).set(1)
        metrics.set_build_info(service, **{f"{service}_model": model_id})  # embedder_model= / reranker_model=

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

    async def probe(self) -> bool | str:
        """Readiness that never waits behind model work (it returns at once): work but no progress for `stall_s`
        = not ready (a hung forward pass); busy and making progress = ready; idle = the verdict of the last
        `probe_once` (a tiny real forward pass on the model thread), a new one being started in the background so
        the next round sees it. A probe forward pass that itself hangs past `stall_s` is not ready."""
        stuck = self.batcher.busy_for()
        if stuck > self.stall_s:
            return f"the model has had work but finished nothing for {stuck:.0f}s"
        if self._probe_task is not None and not self._probe_task.done():
            age = time.perf_counter() - self._probe_started
            return True if age <= self.stall_s else f"the health forward pass has not returned for {age:.0f}s"
        if self._probe_task is not None:
            ok = not self._probe_task.cancelled() and self._probe_task.exception() is None and self._probe_task.result()
            self._probe_ok = bool(ok)
            self._probe_task = None
        if self.batcher.idle:
            self._probe_started = time.perf_counter()
            self._probe_task = asyncio.get_running_loop().create_task(self._forward_probe())
        return True if self._probe_ok else "the last health forward pass gave a bad output"

    async def _forward_probe(self) -> bool:
        return await asyncio.get_running_loop().run_in_executor(self._model_pool, self.probe_once)

    async def warmup(self) -> None:
        """Start the batcher in this loop and run a forward pass so the first request is not slow."""
        self.batcher.start()
        if not await self._forward_probe():
            raise RuntimeError(f"{self.service} {self.warmup_error}")

    async def close(self) -> None:
        """Stop the batcher and the executors."""
        if self._probe_task is not None:
            self._probe_task.cancel()
        await self.batcher.stop()
        self._model_pool.shutdown(wait=True)
        self._pre_pool.shutdown(wait=True)
