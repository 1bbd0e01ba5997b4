"""Writes and searches together while a replica is killed, on real processes: nats-server, 2 shards x 2 log-fed
index replicas, a gateway following the registry, the model-free hash embedder (plumbing, not quality).

kill -9 of one replica under search + write load: 0 failed searches, 0 answers with coverage < 1, every write
acknowledged, and afterwards every acknowledged document is on every replica of its shard (the killed one
included, after it came back and caught up from its snapshot + the log's tail).
"""

from __future__ import annotations

import signal
import time

import grpc

from tests.integration.searchload import SearchLoad, WriteLoad
from winnow.api.internal.index.v1 import index_pb2 as ipb
from winnow.api.internal.index.v1 import index_pb2_grpc as ipb_grpc
from winnow.bench.replica_cluster import ReplicaCluster
from winnow.client import WinnowClient
from winnow.services.gateway import routing


def _replica_missing(address: str, ids: list[str], seq: int) -> list[str]:
    with grpc.insecure_channel(address) as ch:
        stub = ipb_grpc.IndexShardStub(ch)
        # Read-your-writes on the replica itself: wait until it applied the last acknowledged sequence.
        stub.Search(ipb.SearchRequest(query_text="words", k=1, min_applied_seq=seq), timeout=30)
        return list(stub.Get(ipb.GetRequest(ids=ids), timeout=30).missing)


def test_kill_9_a_replica_under_search_and_write_load(tmp_path):
    with ReplicaCluster(tmp_path, shards=2, replicas=2, index_args=["--snapshot-every", "40"]) as c:
        with WinnowClient(c.gateway.address, timeout=30) as w:
            assert w.upsert([{"id": f"d{i}", "text": f"document {i} about topic{i % 7} words"}
                             for i in range(40)]).upserted == 40
        with SearchLoad(c.gateway.address) as searches, WriteLoad(c.gateway.address) as writes:
            searches.answers(20)
            c.kill(0, 0, signal.SIGKILL)
            searches.answers(40)
            before = len(writes.acked)
            end = time.monotonic() + 30
            while len(writes.acked) < before + 30:  # writes go on while the replica is down
                assert time.monotonic() < end, writes.failures[-3:]
                time.sleep(0.02)
            c.restart(0, 0)  # its data dir: newest snapshot + the log's tail
            searches.answers(40)
        assert searches.failures == [] and searches.partial == [], (searches.failures[:3], searches.partial[:3])
        assert writes.failures == [] and len(writes.acked) >= 30
        ids = [f"d{i}" for i in range(40)] + writes.acked
        for (shard, replica), svc in c.index.items():
            mine = [i for i in ids if routing.shard_for(i, 2) == shard]
            assert _replica_missing(svc.address, mine, writes.seqs.get(shard, 0)) == [], (shard, replica)
