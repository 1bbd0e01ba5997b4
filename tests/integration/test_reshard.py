"""Reshard 2 -> 3 under search and write load, on real processes: the local launcher's cluster (nats-server,
2 shards x 1 replica, the gateway following registry.json, the model-free hash embedder). Every document is
findable before, during and after; writes go on through the switch and none is lost; the new layout holds every
document (copied with its stored vector, never re-embedded) and the old replicas are gone.
"""

from __future__ import annotations

import random
import threading
import time

import grpc

from winnow.cluster.launcher import ClusterConfig, LocalCluster
from winnow.cli import main
from winnow.client import WinnowClient

N = 80


class Load:
    """A searcher looking documents up by their unique word (lexical top 1 must be it) and a writer adding new
    ones; both record every failure."""

    def __init__(self, target: str) -> None:
        self.search_client, self.write_client = WinnowClient(target, timeout=10), WinnowClient(target, timeout=10)
        self.stop = threading.Event()
        self.searches = 0
        self.failures: list[str] = []
        self.misses: list[tuple[str, list[str]]] = []
        self.partial = 0
        self.layouts: set[str] = set()
        self.written: list[str] = []
        self.threads = [threading.Thread(target=self._search, daemon=True),
                        threading.Thread(target=self._write, daemon=True)]

    def _search(self) -> None:
        rng = random.Random(0)
        while not self.stop.is_set():
            n = rng.randrange(N)
            try:
                r = self.search_client.search(f"uniq{n}", k=3, rerank=False, no_cache=True, retrieval="lexical")
            except grpc.RpcError as err:
                self.failures.append(f"search {err.code().name}: {err.details()}")
                continue
            self.searches += 1
            self.layouts.add(r.served_at.split(".")[1])
            self.partial += r.coverage.shards_answered != r.coverage.shards_asked
            if not r.hits or r.hits[0].id != f"d{n}":
                self.misses.append((f"d{n}", [h.id for h in r.hits]))

    def _write(self) -> None:
        i = 0
        while not self.stop.is_set():
            doc = {"id": f"w{i}", "text": f"written during the reshard wuniq{i}"}
            try:
                self.write_client.upsert([doc])
                self.written.append(doc["id"])
            except grpc.RpcError as err:
                self.failures.append(f"write {err.code().name}: {err.details()}")
            i += 1
            time.sleep(0.02)

    def wait(self, more: int, within_s: float = 60.0) -> None:
        goal, end = self.searches + more, time.monotonic() + within_s
        while self.searches < goal:
            assert time.monotonic() < end, self.failures[-3:]
            time.sleep(0.01)

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=20)
        self.search_client.close()
        self.write_client.close()


def test_reshard_two_to_three_under_load_keeps_every_document_findable(tmp_path):
    cfg = ClusterConfig(data_dir=tmp_path / "c", shards=2, replicas=1, reranker=False, gateway_port=0,
                        cache="off", fake_embedder=True,
                        service_args={"index": ["--dim", "32", "--coarse-dims", "8,16", "--index-factory", "Flat",
                                                "--health-interval-s", "0.3"]})
    with LocalCluster(cfg) as cluster:
        with WinnowClient(cluster.gateway, timeout=30) as w:
            assert w.upsert([{"id": f"d{i}", "text": f"document {i} uniq{i} about topic{i % 7}"}
                             for i in range(N)]).upserted == N
        with Load(cluster.gateway) as load:
            load.wait(30)
            rc = main(["reshard", "--data-dir", str(cfg.data_dir), "--shards", "3"])  # as an operator would
            attached = LocalCluster.attach(cfg.data_dir)  # what the reshard left: the state file says
            try:
                assert rc == 0
                load.wait(30)
            except BaseException:
                attached.stop(grace=5, names=[n for n, p in attached.procs.items() if p.kind == "index"])
                raise
        try:
            assert attached.layout == "L1" and attached.shards == 3
            assert load.failures == [] and load.misses == [] and load.partial == 0, (
                load.failures[:3], load.misses[:3], load.partial)
            assert load.layouts == {"L0", "L1"} and len(load.written) > 10
            with WinnowClient(cluster.gateway, timeout=30) as w:
                end = time.monotonic() + 30
                while (info := w.info()).documents < N + len(load.written):  # the last writes are being applied
                    assert time.monotonic() < end, (info.documents, N + len(load.written))
                    time.sleep(0.1)
                assert info.layout == "L1" and len(info.shards) == 3 and info.documents == N + len(load.written)
                ids = [f"d{i}" for i in range(N)] + load.written
                assert list(w.get(ids).missing) == []
            registry = (cluster.data_dir / "registry.json").read_text()
            assert '"layout": "L1"' in registry
            assert sorted(p.shard for p in attached.procs.values() if p.kind == "index") == [0, 1, 2]
            assert all(p.layout == "L1" and p.alive() for p in attached.procs.values() if p.kind == "index")
            assert not any(p.alive() for p in cluster.procs.values() if p.kind == "index")  # the old layout retired
        finally:
            attached.stop(grace=5, names=[n for n, p in attached.procs.items() if p.kind == "index"])
