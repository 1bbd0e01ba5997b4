"""The shared micro-batcher: size, wait and token budgets; cancellation; error fan-out; bounded queue."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from winnow.common.batcher import MicroBatcher, summarize
from winnow.common.errors import Overloaded


class Recorder:
    """A compute function that records each batch it sees and can be held or made to fail."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, items: list[int]) -> list[int]:
        self.entered.set()
        self.gate.wait(5)
        self.batches.append(list(items))
        if self.fail:
            raise ValueError("model exploded")
        return [x * 10 for x in items]


@pytest.fixture
def executor():
    pool = ThreadPoolExecutor(1)
    yield pool
    pool.shutdown(wait=True)


async def test_results_in_order_and_size_budget(executor) -> None:
    rec = Recorder()
    b = MicroBatcher("test", rec, executor, max_batch_size=4, max_wait_ms=50, max_batch_tokens=10_000)
    out = await b.submit_many(list(range(10)), [1] * 10)
    assert [r for r, _ in out] == [x * 10 for x in range(10)]
    assert [len(x) for x in rec.batches] == [4, 4, 2]
    await b.stop()


async def test_concurrent_requests_share_a_batch(executor) -> None:
    rec = Recorder()
    b = MicroBatcher("test", rec, executor, max_batch_size=8, max_wait_ms=200, max_batch_tokens=10_000)
    outs = await asyncio.gather(*(b.submit(i, 1) for i in range(8)))
    assert sorted(r for r, _ in outs) == [i * 10 for i in range(8)]
    assert len(rec.batches) == 1  # 8 items reached max_batch_size before the 200 ms wait ran out
    await b.stop()


async def test_wait_budget_closes_a_partial_batch(executor) -> None:
    rec = Recorder()
    b = MicroBatcher("test", rec, executor, max_batch_size=64, max_wait_ms=20, max_batch_tokens=10_000)
    t0 = time.perf_counter()
    (res, timing) = await b.submit(3, 1)
    assert res == 30 and rec.batches == [[3]]
    assert time.perf_counter() - t0 >= 0.015
    assert timing.queue_ms >= 15
    await b.stop()


async def test_waiting_stops_while_it_brings_no_companions_and_resumes_with_concurrency(executor) -> None:
    rec = Recorder()
    b = MicroBatcher("test", rec, executor, max_batch_size=64, max_wait_ms=30, max_batch_tokens=10_000)
    waited = []
    for i in range(10):  # one caller, one item at a time
        (_, timing) = await b.submit(i, 1)
        waited.append(timing.queue_ms >= 25)
    assert waited[:8] == [True] * 8 and waited[8:] == [False, False]  # 8 fruitless waits, then none
    for i in range(13):  # 15 batches in all close at once ...
        (_, timing) = await b.submit(100 + i, 1)
        assert timing.queue_ms < 25
    # ... and the 16th waits again: a companion sent meanwhile joins it, so waiting is back on
    first = asyncio.ensure_future(b.submit(500, 1))
    await asyncio.sleep(0.005)
    second = await b.submit(501, 1)
    (_, t1) = await first
    assert t1.batch_id == second[1].batch_id and t1.queue_ms >= 25
    (_, timing) = await b.submit(600, 1)
    assert timing.queue_ms >= 25  # one wait among the last 8 paid off: wait
    await b.stop()


async def test_token_budget_uses_padded_cost(executor) -> None:
    rec = Recorder()
    b = MicroBatcher("test", rec, executor, max_batch_size=64, max_wait_ms=50, max_batch_tokens=100)
    # costs 30 each: 3 fit (90), a 4th would pad to 120
    out = await b.submit_many(list(range(7)), [30] * 7)
    assert len(out) == 7
    assert [len(x) for x in rec.batches] == [3, 3, 1]
    # one item over the budget still runs, alone
    await b.submit(99, 500)
    assert rec.batches[-1] == [99]
    await b.stop()


async def test_batch_sorted_by_cost(executor) -> None:
    rec = Recorder()
    b = MicroBatcher("test", rec, executor, max_batch_size=8, max_wait_ms=50, max_batch_tokens=10_000)
    out = await b.submit_many([5, 1, 3], [50, 10, 30])
    assert [r for r, _ in out] == [50, 10, 30]
    assert rec.batches == [[1, 3, 5]]
    await b.stop()


async def test_failed_batch_fails_every_waiter(executor) -> None:
    rec = Recorder(fail=True)
    b = MicroBatcher("test", rec, executor, max_batch_size=8, max_wait_ms=50, max_batch_tokens=10_000)
    results = await asyncio.gather(*(b.submit(i, 1) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, ValueError) and "exploded" in str(r) for r in results)
    rec.fail = False
    assert (await b.submit(1, 1))[0] == 10  # the batcher survives a failed batch
    await b.stop()


async def test_cancelled_callers_dropped_before_compute(executor) -> None:
    rec = Recorder()
    rec.gate.clear()
    b = MicroBatcher("test", rec, executor, max_batch_size=1, max_wait_ms=0, max_batch_tokens=10_000)
    first = asyncio.create_task(b.submit(1, 1))
    await asyncio.get_running_loop().run_in_executor(None, rec.entered.wait, 5)  # batch [1] is computing
    doomed = asyncio.create_task(b.submit(2, 1))
    kept = asyncio.create_task(b.submit(3, 1))
    await asyncio.sleep(0)  # let both enqueue
    doomed.cancel()
    rec.gate.set()
    assert (await first)[0] == 10 and (await kept)[0] == 30
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert [1] in rec.batches and [3] in rec.batches and [2] not in rec.batches
    await b.stop()


async def test_bounded_queue_overloads(executor) -> None:
    rec = Recorder()
    rec.gate.clear()
    b = MicroBatcher("test", rec, executor, max_batch_size=1, max_wait_ms=0, max_batch_tokens=10_000, max_queue=2)
    busy = asyncio.create_task(b.submit_many([1, 2], [1, 1]))
    await asyncio.get_running_loop().run_in_executor(None, rec.entered.wait, 5)
    await b.submit_many([], [])  # nothing queued is fine
    held = asyncio.create_task(b.submit(3, 1))
    await asyncio.sleep(0)
    with pytest.raises(Overloaded):
        await b.submit_many([4, 5], [1, 1])
    rec.gate.set()
    await busy
    await held
    await b.stop()


def test_summarize_counts_each_batch_once() -> None:
    from winnow.common.batcher import ItemTiming

    t = [ItemTiming(1.0, 5.0, 0), ItemTiming(2.0, 5.0, 0), ItemTiming(6.0, 4.0, 1)]
    s = summarize(t, wall_ms=12.0)
    assert s["inference"] == 9.0 and s["queue"] == 3.0 and s["batches"] == 2.0


def test_queue_created_lazily_outside_loop(executor) -> None:
    b = MicroBatcher("test", Recorder(), executor)
    assert b.depth == 0  # constructing outside a running loop creates no asyncio objects

    async def go() -> int:
        (r, _), = await b.submit_many([2], [1])
        await b.stop()
        return r

    assert asyncio.run(go()) == 20
