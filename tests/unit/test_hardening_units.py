"""Hardening, the pure parts: the shared limits, the shard self-check with deleted slots, readiness hysteresis,
and the batcher dropping abandoned work at sub-batch boundaries."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from winnow.common import limits
from winnow.common.batcher import MicroBatcher
from winnow.common.errors import InvalidArgument
from winnow.rpc.health import Readiness
from winnow.services.gateway.settings import GatewaySettings
from winnow.services.index.settings import IndexSettings
from winnow.services.index.vectors import VectorStore


@pytest.mark.parametrize(("meta", "fragment"), [
    ('{"x": NaN}', "NaN"), ('{"x": Infinity}', "Infinity"), ('{"x": 1e999}', "infinity"),
    ("[1]", "JSON object"), ("{bad", "not valid JSON"),
    ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested 100000 levels"),
])
def test_bad_metadata_is_invalid_argument_naming_the_field(meta, fragment):
    with pytest.raises(InvalidArgument) as err:
        limits.metadata(meta, "documents[3].metadata_json")
    assert str(err.value).startswith("documents[3].metadata_json") and fragment in str(err.value)


def test_brackets_inside_strings_do_not_count_as_depth():
    assert limits.json_depth('{"a": "[[[[{{{{\\"]]"}') == 1
    assert limits.metadata('{"a": {"b": [1, 2.5, "x"]}}', "m") == {"a": {"b": [1, 2.5, "x"]}}


@pytest.mark.parametrize(("call", "fragment"), [
    (lambda: limits.doc_id("x" * 10_000, "ids[1]"), "ids[1] is 10000 bytes"),
    (lambda: limits.payload("x" * 100_000, "", "documents[0]"), "payload_max_bytes"),
    (lambda: limits.filter_number(float("nan"), "filters[0]"), "finite"),
    (lambda: limits.filter_number(float("inf"), "filters[0]"), "finite"),
    (lambda: limits.search_params(ef_search=50_000_000), "ef_search"),
    (lambda: limits.search_params(nprobe=10**9), "nprobe"),
    (lambda: limits.mrl_dim(5000, 384), "mrl_dim is 5000"),
])
def test_limits_refuse_with_the_field_named(call, fragment):
    with pytest.raises(InvalidArgument) as err:
        call()
    assert fragment in str(err.value)


def test_gateway_and_shard_share_the_limits():
    assert GatewaySettings().limits() == IndexSettings().limits() == limits.DEFAULT_LIMITS


@pytest.mark.parametrize("factory", ["HNSW32,Flat", "IVF16,Flat", "Flat"])
def test_shard_self_check_holds_with_most_slots_deleted(factory):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1200, 16)).astype(np.float32)
    store = VectorStore(16, factory, [], train_min=600)
    store.add(x / np.linalg.norm(x, axis=1, keepdims=True))
    store.kill(np.arange(1100))
    assert store.probe(nprobe=32, ef_search=128)


def test_readiness_flips_only_after_repeated_failures_and_says_why():
    async def run():
        state = {"ok": True}
        r = Readiness(failures_to_flip=2)
        r.add("caught_up", lambda: True if state["ok"] else "replica at seq 3, needs 9")
        assert await r.evaluate(1.0)
        state["ok"] = False
        assert await r.evaluate(1.0)  # one bad round: still ready
        assert not await r.evaluate(1.0)
        assert r.reasons == {"caught_up": "replica at seq 3, needs 9"}
        state["ok"] = True
        assert await r.evaluate(1.0)

    asyncio.run(run())


def test_batcher_stops_abandoned_work_at_the_next_sub_batch():
    calls: list[int] = []
    started = threading.Event()

    def compute(items):
        calls.append(len(items))
        started.set()
        time.sleep(0.05)
        return items

    async def run():
        pool = ThreadPoolExecutor(1)
        b = MicroBatcher("t", compute, pool, max_batch_size=64, max_batch_tokens=64 * 10, sub_batch_tokens=40,
                         max_wait_ms=1)
        task = asyncio.create_task(b.submit_many(list(range(64)), [10] * 64))  # 16 sub-batches of 4
        while not started.is_set():
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        while not b.idle:
            await asyncio.sleep(0.01)
        assert b.busy_for() == 0.0
        await b.stop()
        pool.shutdown()

    asyncio.run(run())
    assert sum(calls) <= 8, calls  # of 64 items, at most the slice running when the caller left (+1) computed


def test_admission_queues_within_budget_and_refuses_at_once_past_it():
    from winnow.common.admission import Admission
    from winnow.common.errors import Overloaded

    async def run():
        gate = Admission("gw", "Search", max_concurrent=1, max_waiting=2, max_wait_s=0.4, wait_factor=1.0)
        gate.service_s = 0.2  # learnt: one request takes 200 ms
        await gate.acquire()
        waiter = asyncio.create_task(gate.acquire(remaining=5.0))  # position 1: 200 ms expected, budget 200 ms
        await asyncio.sleep(0.01)
        assert gate.waiting == 1
        t = time.perf_counter()
        with pytest.raises(Overloaded) as err:  # position 2: 400 ms expected > 200 ms budget: refused at once
            await gate.acquire(remaining=5.0)
        assert time.perf_counter() - t < 0.05 and err.value.retry_after_s == pytest.approx(0.4)
        with pytest.raises(Overloaded):  # its deadline leaves no time to run after waiting
            await gate.acquire(remaining=0.3)
        gate.release(0.2)
        await waiter  # the slot passed on
        assert gate.inflight == 1 and gate.waiting == 0
        gate.release(0.2)
        assert gate.inflight == 0

    asyncio.run(run())


def test_admission_refuses_a_waiter_whose_wait_runs_out():
    from winnow.common.admission import Admission
    from winnow.common.errors import Overloaded

    async def run():
        gate = Admission("gw", "Search", max_concurrent=1, max_waiting=8, max_wait_s=0.05)
        await gate.acquire()
        with pytest.raises(Overloaded, match="waited"):
            await gate.acquire()
        assert gate.waiting == 0
        gate.release(0.01)
        await gate.acquire()  # free again: runs at once
        gate.release(0.01)

    asyncio.run(run())


def test_searches_that_will_not_be_reranked_get_the_first_stage_gate():
    from winnow.api.gateway.v1 import gateway_pb2 as gpb
    from winnow.services.gateway.server import admission_classes

    classify = admission_classes(GatewaySettings(max_concurrent=2, max_concurrent_first_stage=6))
    first = ("Search/first-stage", 6)
    assert classify("Search", gpb.SearchRequest(query="q")) is None  # reranked by default: the method's gate
    assert classify("Search", gpb.SearchRequest(query="q", rerank=True)) is None
    assert classify("Search", gpb.SearchRequest(query="q", rerank=False)) == first
    assert classify("Search", gpb.SearchRequest(query_vector=[0.1])) == first  # no text: nothing to rerank
    assert classify("Upsert", gpb.UpsertRequest()) is None
    # no reranker configured: every search is first-stage; the class turned off: one gate for all
    assert admission_classes(GatewaySettings(reranker=""))("Search", gpb.SearchRequest(query="q")) == (
        "Search/first-stage", 8)
    off = admission_classes(GatewaySettings(max_concurrent_first_stage=0))
    assert off("Search", gpb.SearchRequest(query="q", rerank=False)) is None
