"""A layout switch (what a reshard ends with) under search load, on real processes: the registry names a new
layout of 3 shards instead of 2; searches that started on the old layout finish there, new ones use the new one,
then the old processes go away. Every document is findable before, during and after; no search fails or loses
coverage. (The data movement itself is the log's job; here the new layout is written through a second gateway.)
"""

from __future__ import annotations

import signal
import time

from tests.integration.searchload import FindLoad
from winnow.bench.replica_cluster import ReplicaCluster
from winnow.client import WinnowClient

N = 60


def _docs() -> list[dict]:
    return [{"id": f"d{i}", "text": f"document {i} uniq{i} about topic{i % 7}"} for i in range(N)]


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

        with FindLoad(c.gateway.address, docs=N) as load:
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
