"""A layout switch (what a reshard ends with) under search load, on real processes: the registry names a new
layout of 3 shards instead of 2; searches that started on the old layout finish there, new ones use the new one,
then the old processes go away. Every document is findable before, during and after; no search fails or loses
coverage. (The data movement itself is the log's job; here the new layout is written through a second gateway.)
"""

from __future__ import annotations

import random
import signal
import threading
import time

import grpc

from winnow.bench.replica_cluster import ReplicaCluster
from winnow.client import WinnowClient

N = 60


def _docs() -> list[dict]:
    return [{"id": f"d{i}", "text": f"document {i} uniq{i} about topic{i % 7}"} for i in range(N)]


class FindLoad:
    """Threads looking up random documents by their unique word (BM25 top 1 must be that document)."""

    def __init__(self, target: str, workers: int = 3) -> None:
        self.client = WinnowClient(target, timeout=5)
        self.stop = threading.Event()
        self.ok, self.failures, self.partial, self.misses = 0, [], [], []
        self.layouts: set[str] = set()
        self.threads = [threading.Thread(target=self._run, args=(w,), daemon=True) for w in range(workers)]

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self.stop.is_set():
            n = rng.randrange(N)
            try:
                r = self.client.search(f"uniq{n}", k=3, rerank=False, no_cache=True, retrieval="lexical")
            except grpc.RpcError as err:
                self.failures.append(f"{err.code().name}: {err.details()}")
                continue
            self.ok += 1
            self.layouts.add(r.served_at.split(".")[1])
            if r.coverage.shards_answered != r.coverage.shards_asked:
                self.partial.append(list(r.coverage.failed_shards))
            if not r.hits or r.hits[0].id != f"d{n}":
                self.misses.append((n, [h.id for h in r.hits]))

    def answers(self, more: int, within_s: float = 60.0) -> None:
        goal, end = self.ok + more, time.monotonic() + within_s
        while self.ok < goal:
            assert time.monotonic() < end, f"{self.ok} of {goal} answers; failures {self.failures[-3:]}"
            time.sleep(0.01)

    def __enter__(self) -> "FindLoad":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)
        self.client.close()


def test_switching_to_a_new_layout_under_load_loses_nothing(tmp_path):
    with ReplicaCluster(tmp_path, shards=2, replicas=1) as c:
        with WinnowClient(c.gateway.address, timeout=30) as w:
            assert w.upsert(_docs()).upserted == N
        new = c.spawn_layout("L2", 3)
        staging = tmp_path / "registry-L2.json"
        c.write_registry(layout="L2", shards=[[p.address] for p in new], path=staging)
        writer = c.spawn_gateway("gateway-L2", staging)
        with WinnowClient(writer.address, timeout=30) as w:
            assert w.upsert(_docs()).upserted == N  # routed over 3 shards

        with FindLoad(c.gateway.address) as load:
            load.answers(30)
            c.write_registry(layout="L2", shards=[[p.address] for p in new])  # the switch
            with WinnowClient(c.gateway.address, timeout=5) as w:
                end = time.monotonic() + 30
                while w.info().layout != "L2":
                    assert time.monotonic() < end, "the gateway never switched to L2"
                    time.sleep(0.05)
            load.answers(30)
            for s in range(2):
                c.kill(s, 0, signal.SIGTERM)  # the old layout retires
            load.answers(30)
        assert load.failures == [] and load.partial == [] and load.misses == [], (
            load.failures[:3], load.partial[:3], load.misses[:3])
        assert load.layouts == {"L1", "L2"}
