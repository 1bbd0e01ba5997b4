"""The replica picker and failover engine over in-process fake replicas (the real thing: tests/integration)."""

from __future__ import annotations

import asyncio

import pytest

from winnow.common.errors import FailedPrecondition, InvalidArgument, Unavailable
from winnow.services.gateway.discovery import Topology
from winnow.services.gateway.ports import Hit, ShardQuery, ShardRangeQuery, ShardResult
from winnow.services.gateway.replicas import ReplicaPolicy, ReplicaSet
from winnow.services.gateway.topology import ShardTopology


class FakeReplica:
    def __init__(self, target: str, seq: int = 5, delay: float = 0.0) -> None:
        self.target = target
        self.seq = seq
        self.delay = delay
        self.fail: BaseException | None = None
        self.calls = 0
        self.health = asyncio.Queue()
        self.health.put_nowait(True)
        self.closed = False
        self.checks = 0
        self.hung = False

    async def search(self, query: ShardQuery, timeout):
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        if query.min_applied_seq > self.seq:
            raise FailedPrecondition(f"replica at seq {self.seq}, needs {query.min_applied_seq}")
        return ShardResult([Hit(self.target, 1.0)], [], applied_seq=self.seq)

    async def range_search(self, query: ShardRangeQuery, timeout):
        hits = [Hit(f"d{i}", 1.0 - i / 10) for i in range(6)]
        for i in range(0, 6, 2):
            if self.fail is not None and i >= 2:
                raise self.fail
            yield hits[i:i + 2]

    async def get(self, ids, timeout):
        if self.fail is not None:
            raise self.fail
        return [Hit(i, 0.0) for i in ids], []

    async def serving(self):
        while True:
            yield await self.health.get()

    async def check(self, timeout):
        self.checks += 1
        if self.hung:
            await asyncio.sleep(timeout)
            raise TimeoutError
        return self.fail is None

    async def watch(self):
        yield self.seq
        await asyncio.Event().wait()

    async def close(self):
        self.closed = True


async def _started(*replicas, **policy) -> ReplicaSet:
    rs = ReplicaSet("shard-0", list(replicas), ReplicaPolicy(**{"eject_base_s": 5.0, **policy}))
    rs.start()
    await asyncio.sleep(0.01)  # health and sequence streams report
    return rs


async def test_least_outstanding_spreads_concurrent_queries():
    a, b = FakeReplica("a", delay=0.02), FakeReplica("b", delay=0.02)
    rs = await _started(a, b)
    await asyncio.gather(*(rs.search(ShardQuery(None, 5), 1.0) for _ in range(10)))
    assert a.calls == b.calls == 5
    await rs.stop()


async def test_an_error_fails_over_at_once_and_ejects_the_replica():
    a, b = FakeReplica("a"), FakeReplica("b")
    a.fail = Unavailable("a: connection reset")
    rs = await _started(a, b)
    for _ in range(6):
        res = await rs.search(ShardQuery(None, 5), 1.0)
        assert res.replica == "b"
    assert a.calls <= 1  # ejected after its one failure
    await rs.stop()


async def test_every_replica_failing_is_one_unavailable_naming_them():
    a, b = FakeReplica("a"), FakeReplica("b")
    a.fail = b.fail = Unavailable("down")
    rs = await _started(a, b)
    with pytest.raises(Unavailable, match="a: down.*b: down|b: down.*a: down"):
        await rs.search(ShardQuery(None, 5), 1.0)
    await rs.stop()


async def test_invalid_argument_is_not_retried():
    a, b = FakeReplica("a"), FakeReplica("b")
    a.fail = b.fail = InvalidArgument("bad filter")
    rs = await _started(a, b)
    with pytest.raises(InvalidArgument):
        await rs.search(ShardQuery(None, 5), 1.0)
    assert a.calls + b.calls == 1
    await rs.stop()


async def test_a_slow_replica_gets_a_hedge_and_the_fast_answer_wins():
    slow, fast = FakeReplica("slow", delay=2.0), FakeReplica("fast")
    rs = await _started(slow, fast, hedge_after_s=0.02)
    rs.replicas[1].outstanding = 1  # make the picker choose the slow one first
    res = await asyncio.wait_for(rs.search(ShardQuery(None, 5), 5.0), 1.0)
    assert res.replica == "fast" and slow.calls == 1
    rs.replicas[1].outstanding = 0
    await rs.stop()


async def test_without_hedging_the_backup_goes_out_at_half_the_budget():
    slow, fast = FakeReplica("slow", delay=5.0), FakeReplica("fast")
    rs = await _started(slow, fast)
    rs.replicas[1].outstanding = 1
    t = asyncio.get_running_loop().time()
    res = await rs.search(ShardQuery(None, 5), 1.0)
    elapsed = asyncio.get_running_loop().time() - t
    assert res.replica == "fast" and 0.45 < elapsed < 0.95  # backup at 0.5 s; the slow one would take 5 s
    rs.replicas[1].outstanding = 0
    await rs.stop()


async def test_not_serving_replicas_are_avoided_until_they_serve_again():
    a, b = FakeReplica("a"), FakeReplica("b")
    rs = await _started(a, b)
    a.health.put_nowait(False)  # draining
    await asyncio.sleep(0.01)
    for _ in range(4):
        assert (await rs.search(ShardQuery(None, 5), 1.0)).replica == "b"
    a.health.put_nowait(True)
    await asyncio.sleep(0.01)
    await asyncio.gather(*(rs.search(ShardQuery(None, 5), 1.0) for _ in range(4)))
    assert a.calls > 0
    await rs.stop()


async def test_read_your_writes_prefers_the_replica_that_applied_it():
    behind, ahead = FakeReplica("behind", seq=3), FakeReplica("ahead", seq=9)
    rs = await _started(behind, ahead)
    for _ in range(4):
        res = await rs.search(ShardQuery(None, 5, min_applied_seq=9), 1.0)
        assert res.replica == "ahead" and not res.consistency_unmet
    assert behind.calls == 0 and rs.known_seq() == 9
    await rs.stop()


async def test_a_token_no_replica_reached_is_answered_and_says_so():
    a, b = FakeReplica("a", seq=3), FakeReplica("b", seq=4)
    rs = await _started(a, b)
    res = await rs.search(ShardQuery(None, 5, min_applied_seq=10), 1.0)
    assert res.consistency_unmet and "10" in res.consistency_unmet and res.applied_seq in (3, 4)
    await rs.stop()


async def test_range_search_resumes_on_another_replica_without_repeats():
    a, b = FakeReplica("a"), FakeReplica("b")
    a.fail = Unavailable("reset mid-stream")
    rs = await _started(a, b)
    rs.replicas[1].outstanding = 1  # start on a
    ids = [h.id async for page in rs.range_search(ShardRangeQuery(None, 0.0), 1.0) for h in page]
    assert ids == [f"d{i}" for i in range(6)]
    rs.replicas[1].outstanding = 0
    await rs.stop()


async def test_topology_updates_replicas_in_place_and_switches_layouts():
    made: dict[str, FakeReplica] = {}

    def dial(t):
        made[t] = FakeReplica(t)
        return made[t]

    updates: asyncio.Queue = asyncio.Queue()

    async def source():
        while True:
            yield await updates.get()

    topo = ShardTopology(source(), dial, ReplicaPolicy(), switch_timeout_s=1.0, retire_grace_s=1.0)
    updates.put_nowait(Topology("L1", (("a:1", "a:2"), ("b:1",))))
    await topo.start(first_within_s=1.0)
    first = topo.current()
    assert [rs.target for rs in first.shards] == ["a:1|a:2", "b:1"]
    await asyncio.sleep(0.02)
    assert topo.snapshot() == [("layout:L1", 0), ("shard-0", 5), ("shard-1", 5)]

    updates.put_nowait(Topology("L1", (("a:1", "a:3"), ("b:1",))))  # a:2 came back on a new port
    await _until(lambda: topo.current().shards[0].target == "a:1|a:3")
    assert topo.current() is first
    await _until(lambda: made["a:2"].closed)

    with first.use():  # a query in flight on L1 while the layout changes
        updates.put_nowait(Topology("L2", (("c:1",), ("c:2",), ("c:3",))))
        await _until(lambda: topo.current().id == "L2")
        assert len(topo.shards) == 3 and not made["a:1"].closed
        assert (await first.shards[0].search(ShardQuery(None, 5), 1.0)).replica in ("a:1", "a:3")
    await _until(lambda: made["a:1"].closed and made["b:1"].closed)
    await topo.stop()


async def _until(pred, timeout=2.0):
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.005)


async def test_an_ejected_replica_comes_back_only_after_a_health_check_answers():
    a, b = FakeReplica("a"), FakeReplica("b")
    a.fail = Unavailable("reset")
    rs = await _started(a, b, eject_base_s=0.05, eject_max_s=0.1, probe_timeout_s=0.02)
    rs.replicas[1].outstanding = 1  # a first
    assert (await rs.search(ShardQuery(None, 5), 1.0)).replica == "b"
    a.fail, a.hung = None, True     # now it hangs: checks time out, searches never go there
    rs.replicas[1].outstanding = 0
    for _ in range(20):
        assert (await rs.search(ShardQuery(None, 5), 1.0)).replica == "b"
        await asyncio.sleep(0.01)
    assert a.calls == 1 and a.checks >= 2
    a.hung = False                  # answers its health check again: back in the rotation
    await _until(lambda: rs.replicas[0].ejected_until == 0)
    await asyncio.gather(*(rs.search(ShardQuery(None, 5), 1.0) for _ in range(6)))
    assert a.calls > 1
    await rs.stop()


async def test_a_cache_hit_is_never_staler_than_the_freshest_replica():
    """Answers are stored under the sequence they were served at; lookups use the newest sequence any replica
    reported. A replica that moved on makes the old entry unreachable; a lagging replica's answer never hides it."""
    import numpy as np

    from winnow.common.deadline import Deadline
    from winnow.services.gateway.cache import MemoryBackend, ResultCache
    from winnow.services.gateway.model import Retrieval, SearchOptions
    from winnow.services.gateway.search import SearchCore

    class Embedder:
        async def embed(self, texts, *, query, timeout):
            return np.ones((len(texts), 4), dtype=np.float32) / 2

        async def describe(self, timeout):
            return {"model": "m"}

    class Pushing(FakeReplica):
        def __init__(self, target, seq):
            super().__init__(target, seq)
            self.pushes: asyncio.Queue = asyncio.Queue()

        async def watch(self):
            yield self.seq
            while True:
                self.seq = await self.pushes.get()
                yield self.seq

        async def stats(self, timeout):
            raise AssertionError("the key must come from the Watch streams, not a round trip")

    a, b = Pushing("a", 5), Pushing("b", 5)
    updates: asyncio.Queue = asyncio.Queue()

    async def source():
        while True:
            yield await updates.get()

    topo = ShardTopology(source(), {"a": a, "b": b}.__getitem__)
    updates.put_nowait(Topology("L1", (("a", "b"),)))
    await topo.start(first_within_s=1.0)
    await _until(lambda: topo.current().seqs() == {0: 5})
    core = SearchCore(Embedder(), topo, None, ResultCache(MemoryBackend(), ttl_s=60))
    opts = SearchOptions(query="q", rerank=False, retrieval=Retrieval.DENSE)

    first = await core.search(opts, Deadline(2))
    assert not first.cache_hit and first.served_at == "v1.L1.0:5"
    await asyncio.sleep(0.01)  # the cache write is in the background
    assert (await core.search(opts, Deadline(2))).cache_hit

    b.pushes.put_nowait(6)  # b applied a write; a has not
    await _until(lambda: topo.current().seqs() == {0: 6})
    topo.current().shards[0].replicas[1].outstanding = 1  # the picker goes to the lagging a
    lagging = await core.search(opts, Deadline(2))
    assert not lagging.cache_hit and lagging.served_at == "v1.L1.0:5"  # stored under 5: unreachable at 6
    await asyncio.sleep(0.01)
    assert not (await core.search(opts, Deadline(2))).cache_hit
    topo.current().shards[0].replicas[1].outstanding = 0
    topo.current().shards[0].replicas[0].outstanding = 1  # now b answers, at 6: that one is cached
    fresh = await core.search(opts, Deadline(2))
    assert fresh.served_at == "v1.L1.0:6"
    await asyncio.sleep(0.01)
    assert (await core.search(opts, Deadline(2))).cache_hit
    topo.current().shards[0].replicas[0].outstanding = 0
    await topo.stop()
