"""The one asyncio micro-batcher shared by the embedder and the reranker.

Items from concurrent requests wait in one bounded queue; a worker task closes a batch when it holds
`max_batch_size` items, when the oldest item has waited `max_wait_ms`, or when one more item would push the
padded token cost (longest item x items) past `max_batch_tokens`. Waiting is skipped while it does not pay: when
the last 8 waits brought no companion (one request at a time), a batch closes at once (every 16th still waits, to
notice concurrency coming back); items that queue while a batch computes are batched either way. The batch is
sorted by cost (so padding is small), computed in the given executor (never on the event loop), and every
waiter gets its own result, or the batch's exception if the compute failed. Waiters whose future was cancelled
(the caller went away, or its deadline passed) are dropped before compute, and a closed batch is computed in
sub-batches of at most `sub_batch_tokens` padded tokens: between two, the waiters that left are dropped, so
abandoned work stops at the next sub-batch boundary. Past `max_queue` items the batcher refuses new work with
`Overloaded` (RESOURCE_EXHAUSTED).

Progress markers (`busy_for()`, `idle`) let a health check tell "working" from "stuck" without queueing a
forward pass behind the work.

The queue and worker are created lazily inside the running loop (`start()` or the first `submit`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from winnow.common import metrics
from winnow.common.errors import Overloaded, Unavailable

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741 - item type
O = TypeVar("O")  # noqa: E741 - result type


@dataclass(frozen=True, slots=True)
class ItemTiming:
    """Where one item's time went: waiting in the queue, and its batch's compute."""

    queue_ms: float
    inference_ms: float
    batch_id: int


@dataclass(slots=True)
class _Entry(Generic[I, O]):
    item: I
    cost: int
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


def summarize(timings: Sequence[ItemTiming], wall_ms: float) -> dict[str, float]:
    """Request-level timings from its items: inference = the distinct batches' compute, queue = the rest."""
    batches: dict[int, float] = {}
    for t in timings:
        batches[t.batch_id] = t.inference_ms
    inference = sum(batches.values())
    return {"queue": max(0.0, wall_ms - inference), "inference": inference, "batches": float(len(batches))}


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """A micro-batcher's budgets as one plain value (the model services' settings build it:
    `ModelServiceSettings.batcher_limits()`; these defaults serve tests and scripts)."""

    max_batch_size: int = 64
    max_wait_ms: float = 2.0
    max_batch_tokens: int = 16384
    max_queue: int = 8192
    sub_batch_tokens: int = 0  # 0 = a closed batch in one call; else slices, abandoned items dropped between them
    stall_s: float = 60.0  # readiness: work but no progress this long = not ready (a model core's probe)


class MicroBatcher(Generic[I, O]):
    """Dynamic batching of items into calls of `compute(items) -> results` (same length, same order)."""

    def __init__(
        self,
        service: str,
        compute: Callable[[list[I]], Sequence[O]],
        executor: Executor,
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        max_batch_tokens: int = 16384,
        max_queue: int = 4096,
        sub_batch_tokens: int = 0,
    ) -> None:
        if max_batch_size < 1 or max_batch_tokens < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("batch size, token budget and queue bound must be positive; max wait >= 0")
        self.service = service
        self._compute = compute
        self._executor = executor
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_batch_tokens = max_batch_tokens
        self.max_queue = max_queue
        # 0 = the whole batch in one call (no boundary to stop at).
        self.sub_batch_tokens = sub_batch_tokens if sub_batch_tokens > 0 else max_batch_tokens
        self._computing_since: float | None = None
        self.last_progress = time.perf_counter()
        self._pending: deque[_Entry[I, O]] | None = None
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._ids = itertools.count()
        self._closed = False
        self._waits: deque[bool] = deque(maxlen=8)  # the last waits for companions: did any arrive?
        self._skipped = 0

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Create the queue and the worker task in the running loop (idempotent)."""
        if self._worker is not None:
            return
        self._pending = deque()
        self._wakeup = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"{self.service}-batcher")

    async def stop(self) -> None:
        """Stop the worker; items still queued fail with Unavailable."""
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        while self._pending:
            entry = self._pending.popleft()
            if not entry.future.done():
                entry.future.set_exception(Unavailable(f"{self.service} is shutting down"))
        metrics.QUEUE_DEPTH.labels(self.service).set(0)

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing computing."""
        return self._computing_since is None and not self.depth

    def busy_for(self) -> float:
        """Seconds since the batcher last made progress (a sub-batch finished) while it has work; 0 when idle."""
        if self.idle:
            return 0.0
        return time.perf_counter() - max(self.last_progress, self._computing_since or 0.0)

    @property
    def depth(self) -> int:
        """Items waiting now."""
        return len(self._pending) if self._pending is not None else 0

    # -- submission --------------------------------------------------------------------------------------------
    async def submit(self, item: I, cost: int = 1) -> tuple[O, ItemTiming]:
        """Queue one item and wait for its result."""
        (out,) = await self.submit_many([item], [cost])
        return out

    async def submit_many(self, items: Sequence[I], costs: Sequence[int]) -> list[tuple[O, ItemTiming]]:
        """Queue a request's items together (shortest first, so its batches pad little); results in input order.

        Raises Overloaded if the queue cannot take them all. If the caller is cancelled, its items that have not
        started computing are dropped.
        """
        if len(items) != len(costs):
            raise ValueError("items and costs differ in length")
        if self._closed:
            raise Unavailable(f"{self.service} is shutting down")
        self.start()
        assert self._pending is not None and self._wakeup is not None
        if len(self._pending) + len(items) > self.max_queue:
            raise Overloaded(
                f"{self.service} queue is full ({len(self._pending)} of {self.max_queue} items waiting); "
                "retry with backoff"
            )
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future] = [loop.create_future() for _ in items]
        now = time.perf_counter()
        for i in sorted(range(len(items)), key=lambda k: costs[k]):
            self._pending.append(_Entry(items[i], max(1, int(costs[i])), futures[i], now))
        metrics.QUEUE_DEPTH.labels(self.service).set(len(self._pending))
        self._wakeup.set()
        try:
            return list(await asyncio.gather(*futures))
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    # -- worker ------------------------------------------------------------------------------------------------
    def _full(self) -> bool:
        """Whether the queue head already makes a closed batch (size reached, or the next item breaks the budget)."""
        assert self._pending is not None
        n, longest = 0, 0
        for entry in self._pending:
            if entry.future.done():
                continue
            longest = max(longest, entry.cost)
            if n and longest * (n + 1) > self.max_batch_tokens:
                return True
            n += 1
            if n >= self.max_batch_size:
                return True
        return False

    def _live(self) -> int:
        assert self._pending is not None
        return sum(1 for e in self._pending if not e.future.done())

    def _worth_waiting(self) -> bool:
        """Wait up to max_wait_ms for companions, unless the last 8 waits gained none: a caller sending one
        request at a time would only pay max_wait_ms on each (the embed hop of a single search). Every 16th batch
        after that waits anyway, so concurrency coming back is noticed."""
        if self.max_wait_s <= 0:
            return False
        if len(self._waits) < (self._waits.maxlen or 0) or any(self._waits):
            return True
        self._skipped += 1
        if self._skipped >= 16:
            self._skipped = 0
            return True
        return False

    def _take(self) -> list[_Entry[I, O]]:
        assert self._pending is not None
        batch: list[_Entry[I, O]] = []
        longest = 0
        while self._pending and len(batch) < self.max_batch_size:
            entry = self._pending[0]
            if entry.future.done():  # caller cancelled: drop before compute
                self._pending.popleft()
                continue
            longest_next = max(longest, entry.cost)
            if batch and longest_next * (len(batch) + 1) > self.max_batch_tokens:
                break
            batch.append(self._pending.popleft())
            longest = longest_next
        metrics.QUEUE_DEPTH.labels(self.service).set(len(self._pending))
        return batch

    async def _run(self) -> None:
        assert self._pending is not None and self._wakeup is not None
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            if not self._full() and self._worth_waiting():
                before = self._live()
                deadline = self._pending[0].enqueued + self.max_wait_s
                while not self._full():
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), remaining)
                    except TimeoutError:
                        break
                self._waits.append(self._live() > before)
            batch = self._take()
            if batch:
                await self._execute(batch)

    def _sub_batches(self, batch: list[_Entry[I, O]]) -> list[list[_Entry[I, O]]]:
        """Consecutive slices (batch sorted by cost) whose padded cost stays within `sub_batch_tokens`."""
        out: list[list[_Entry[I, O]]] = [[]]
        for e in batch:
            if out[-1] and e.cost * (len(out[-1]) + 1) > self.sub_batch_tokens:
                out.append([])
            out[-1].append(e)
        return out

    async def _execute(self, batch: list[_Entry[I, O]]) -> None:
        batch.sort(key=lambda e: e.cost)
        batch_id = next(self._ids)
        start = time.perf_counter()
        for e in batch:
            metrics.QUEUE_TIME.labels(self.service).observe(start - e.enqueued)
        metrics.BATCH_SIZE.labels(self.service).observe(len(batch))
        metrics.BATCH_TOKENS.labels(self.service).observe(batch[-1].cost * len(batch))
        loop = asyncio.get_running_loop()
        self._computing_since = start
        try:
            for part in self._sub_batches(batch):
                live = [e for e in part if not e.future.done()]
                if len(live) < len(part):
                    metrics.DROPPED_ITEMS.labels(self.service).inc(len(part) - len(live))
                if not live:  # every waiter of this slice left (cancelled or past its deadline): skip it
                    continue
                try:
                    results = await loop.run_in_executor(self._executor, self._compute, [e.item for e in live])
                    if len(results) != len(live):
                        raise RuntimeError(f"batch compute returned {len(results)} results for {len(live)} items")
                except Exception as exc:  # noqa: BLE001 - the batch's error goes to every waiter
                    log.warning("batch failed", extra={"fields": {"items": len(live), "error": repr(exc)}})
                    for e in batch:
                        if not e.future.done():
                            e.future.set_exception(exc)
                    return
                self.last_progress = time.perf_counter()
                inference_ms = (self.last_progress - start) * 1000.0
                for e, result in zip(live, results):  # a waiter whose items are all done need not wait for the rest
                    if not e.future.done():
                        e.future.set_result((result, ItemTiming((start - e.enqueued) * 1000.0, inference_ms, batch_id)))
        finally:
            self._computing_since = None
            self.last_progress = time.perf_counter()
