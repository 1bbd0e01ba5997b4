"""Admission control that protects latency: bounded concurrency, and a wait queue bounded by count and by time.

A request runs at once while fewer than `max_concurrent` run. Otherwise it may wait, FIFO, but only if (a) fewer
than `max_waiting` wait already and (b) its expected wait fits its budget. The expected wait is the queue
position times the recent service time (an EWMA) over `max_concurrent`; the budget is the smallest of
`max_wait_s`, `wait_factor` x the recent service time (so admitted latency stays within about (1 + wait_factor)
x the service time on any machine; never below half of `max_wait_s`, so a mildly oversubscribed fast method
queues instead of being refused), what the caller's deadline leaves after one service time, and half of that
deadline (so a refusal arrives before it). A request that cannot fit is refused at once with `Overloaded`
(RESOURCE_EXHAUSTED) carrying a retry hint, instead of spending its deadline in a queue; one whose wait runs
out is refused the same way.

Pure asyncio (no grpc); `winnow.rpc.server` applies it per RPC method.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator

from winnow.common import metrics
from winnow.common.errors import Overloaded


class Admission:
    """One admission gate (per service method). Must be used inside one running event loop."""

    def __init__(self, service: str, method: str, max_concurrent: int, max_waiting: int, max_wait_s: float,
                 wait_factor: float = 1.0, ewma_alpha: float = 0.1) -> None:
        if max_concurrent < 1 or max_waiting < 0 or max_wait_s < 0:
            raise ValueError("max_concurrent >= 1, max_waiting >= 0 and max_wait_s >= 0")
        self.service = service
        self.name = f"{service} {method}"
        self.max_concurrent = max_concurrent
        self.max_waiting = max_waiting
        self.max_wait_s = max_wait_s
        self.wait_factor = wait_factor
        self.alpha = ewma_alpha
        self.inflight = 0
        self.service_s = 0.0  # EWMA of admitted requests' run time; 0 = nothing measured yet
        self._waiters: deque[asyncio.Future] = deque()

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiters if not f.done())

    def _budget(self, remaining: float | None) -> float:
        budget = self.max_wait_s
        if self.service_s:  # but never below half of max_wait_s: a fast method may queue a little
            budget = min(budget, max(self.wait_factor * self.service_s, self.max_wait_s / 2))
        if remaining is not None:  # leave the run its time, and the refusal time to arrive before the deadline
            budget = min(budget, remaining - self.service_s, remaining / 2)
        return budget

    def _refuse(self, why: str, position: int) -> Overloaded:
        metrics.ADMISSION_REJECTED.labels(self.service, metrics.shard()).inc()
        retry = max(0.01, position * self.service_s / self.max_concurrent)
        return Overloaded(f"{self.name}: {why}; retry in about {retry * 1000:.0f} ms", retry_after_s=retry)

    async def acquire(self, remaining: float | None = None) -> None:
        """Take a slot, waiting within the budget; raises Overloaded when the request cannot be served in time."""
        if self.inflight < self.max_concurrent and not self.waiting:
            self.inflight += 1
            return
        position = self.waiting + 1
        if position > self.max_waiting:
            raise self._refuse(f"{self.max_concurrent} running and {position - 1} waiting (the most allowed)",
                               position)
        budget = self._budget(remaining)
        expected = position * self.service_s / self.max_concurrent
        if budget <= 0 or expected > budget:
            raise self._refuse(f"busy: the expected wait of {expected * 1000:.0f} ms exceeds this request's "
                               f"budget of {max(budget, 0) * 1000:.0f} ms", position)
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        started = time.perf_counter()
        try:
            await asyncio.wait_for(fut, budget)
        except TimeoutError:
            raise self._refuse(f"waited {budget * 1000:.0f} ms for a slot", position) from None
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # the slot was handed over just as the caller left
                self.release(0.0, measured=False)
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)
            metrics.ADMISSION_WAIT.labels(self.service).observe(time.perf_counter() - started)

    def release(self, elapsed_s: float, measured: bool = True) -> None:
        """Give the slot back (to the first waiter still waiting, if any) and learn the service time."""
        if measured:
            self.service_s = elapsed_s if not self.service_s else (1 - self.alpha) * self.service_s + self.alpha * elapsed_s
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes on: inflight unchanged
                return
        self.inflight -= 1

    @contextlib.asynccontextmanager
    async def slot(self, remaining: float | None = None) -> AsyncIterator[None]:
        """`async with gate.slot(deadline_remaining): ...` — acquire, run, release (measuring the run)."""
        await self.acquire(remaining)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.release(time.perf_counter() - start)
