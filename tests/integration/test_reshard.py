"""Reshard 2 -> 3 under search and write load, on real processes: the local launcher's cluster (nats-server,
2 shards x 1 replica, the gateway following registry.json, the model-free hash embedder). Every document is
findable before, during and after; writes go on through the switch and none is lost; the new layout holds every
document (copied with its stored vector, never re-embedded) and the old replicas are gone.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration.searchload import FindLoad, WriteLoad
from winnow.cluster.launcher import ClusterConfig, ClusterError, LocalCluster
from winnow.cli import main
from winnow.client import WinnowClient

N = 80


def _written_during(i: int) -> str:
    return f"written during the reshard wuniq{i}"


def _wait_applied(client: WinnowClient, token: str, within_s: float = 30.0) -> None:
    """Until every shard's replica applied the write `token` names (bounded)."""
    end = time.monotonic() + within_s
    while (r := client.search("uniq0", k=1, rerank=False, no_cache=True, retrieval="lexical",
                              write_token=token)).consistency_unmet:
        assert time.monotonic() < end, r.consistency_unmet


def test_reshard_two_to_three_under_load_keeps_every_document_findable(tmp_path):
    cfg = ClusterConfig(data_dir=tmp_path / "c", shards=2, replicas=1, reranker=False, gateway_port=0,
                        cache="off", fake_embedder=True,
                        service_args={"index": ["--dim", "32", "--coarse-dims", "8,16", "--index-factory", "Flat",
                                                "--health-interval-s", "0.3"]})
    with LocalCluster(cfg) as cluster:
        with WinnowClient(cluster.gateway, timeout=30) as w:
            up = w.upsert([{"id": f"d{i}", "text": f"document {i} uniq{i} about topic{i % 7}"} for i in range(N)])
            assert up.upserted == N
            # An acknowledged write is in the log; replicas apply it moments later (the design: a search without
            # the write token may not see it yet). The load's very first search (Random(0) picks d49) raced that
            # apply on a busy machine and found nothing. "Before" starts once the corpus is applied: a search
            # carrying the token is answered only by replicas that applied it (or says it could not).
            _wait_applied(w, up.write_token)
        # One searcher and one writer (its own client: no session token of its writes reaches the searches).
        with (FindLoad(cluster.gateway, docs=N, workers=1, timeout=10) as searches,
              WriteLoad(cluster.gateway, size=1, pause_s=0.02, text=_written_during) as writes):
            searches.answers(30)
            rc = main(["reshard", "--data-dir", str(cfg.data_dir), "--shards", "3"])  # as an operator would
            attached = LocalCluster.attach(cfg.data_dir)  # what the reshard left: the state file says
            try:
                assert rc == 0
                searches.answers(30)
            except BaseException:
                attached.stop(grace=5, names=[n for n, p in attached.procs.items() if p.kind == "index"])
                raise
        try:
            assert attached.layout == "L1" and attached.shards == 3
            assert searches.failures == [] and searches.misses == [] and searches.partial == [], (
                searches.failures[:3], searches.misses[:3], searches.partial[:3])
            assert writes.failures == [], writes.failures[:3]
            assert searches.layouts == {"L0", "L1"} and len(writes.acked) > 10
            with WinnowClient(cluster.gateway, timeout=30) as w:
                end = time.monotonic() + 30
                while (info := w.info()).documents < N + len(writes.acked):  # the last writes are being applied
                    assert time.monotonic() < end, (info.documents, N + len(writes.acked))
                    time.sleep(0.1)
                assert info.layout == "L1" and len(info.shards) == 3 and info.documents == N + len(writes.acked)
                ids = [f"d{i}" for i in range(N)] + writes.acked
                assert list(w.get(ids).missing) == []
            registry = (cluster.data_dir / "registry.json").read_text()
            assert '"layout": "L1"' in registry
            assert sorted(p.shard for p in attached.procs.values() if p.kind == "index") == [0, 1, 2]
            assert all(p.layout == "L1" and p.alive() for p in attached.procs.values() if p.kind == "index")
            assert not any(p.alive() for p in cluster.procs.values() if p.kind == "index")  # the old layout retired
        finally:
            attached.stop(grace=5, names=[n for n, p in attached.procs.items() if p.kind == "index"])


def test_a_reshard_that_fails_before_the_switch_removes_the_new_layout_and_a_retry_succeeds(tmp_path):
    """No orphaned replicas, no leftover streams (a retry would take their copies for newer writes and skip them),
    the old layout still serving; then the same reshard again moves every document."""
    from winnow.cluster.reshard import reshard
    from winnow.log.client import DocumentLog, LogConfig

    cfg = ClusterConfig(data_dir=tmp_path / "c", shards=2, replicas=1, reranker=False, gateway_port=0,
                        cache="off", fake_embedder=True,
                        service_args={"index": ["--dim", "32", "--coarse-dims", "8,16", "--index-factory", "Flat",
                                                "--health-interval-s", "0.3"]})
    with LocalCluster(cfg) as cluster, WinnowClient(cluster.gateway, timeout=30) as w:
        up = w.upsert([{"id": f"d{i}", "text": f"document {i} uniq{i}"} for i in range(N)])
        _wait_applied(w, up.write_token)
        spawned, spawn = [], cluster.spawn_replica

        def spawn_one_that_dies(shard: int, replica: int, layout: str):
            spawned.append(proc := spawn(shard, replica, layout))
            if shard == 2:
                proc.popen.kill()  # a new replica that dies during start-up: the reshard fails before the switch
            return proc

        cluster.spawn_replica = spawn_one_that_dies
        with pytest.raises(ClusterError, match="during start-up"):
            reshard(cluster, 3)
        cluster.spawn_replica = spawn
        assert cluster.layout == "L0" and cluster.shards == 2
        assert sorted(p.layout for p in cluster.procs.values() if p.kind == "index") == ["L0", "L0"]
        assert len(spawned) == 3 and not any(p.alive() for p in spawned)  # none left running

        async def heads():
            doc_log = DocumentLog(LogConfig(url=cluster.log_url))
            try:
                return [(await doc_log.head("L1", q)).last_seq for q in range(3)]
            finally:
                await doc_log.close()

        assert asyncio.run(heads()) == [0, 0, 0]  # the new layout's streams are gone
        assert w.info().layout == "L0"
        assert [w.search(f"uniq{i}", k=1, rerank=False, no_cache=True, retrieval="lexical").hits[0].id
                for i in (3, 49)] == ["d3", "d49"]
        assert reshard(cluster, 3) == "L1"
        assert w.info().layout == "L1" and list(w.get([f"d{i}" for i in range(N)]).missing) == []
