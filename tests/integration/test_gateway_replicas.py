"""Reads across replicas on real processes: 2 shards x 2 index replicas, a gateway following a registry file,
real gRPC. Searches run from threads the whole time; every answer must come back with full coverage.

The embedder is the service with its model-free hash encoder (plumbing, not quality): the subject is the read path.
"""

from __future__ import annotations

import signal
import time

import grpc
import pytest

from tests.integration.searchload import SearchLoad
from winnow.bench.replica_cluster import ReplicaCluster
from winnow.client import WinnowClient

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = ReplicaCluster(tmp_path_factory.mktemp("replicas"), shards=2, replicas=2).start()
    with WinnowClient(c.gateway.address, timeout=30) as w:
        docs = [{"id": f"d{i}", "text": f"document {i} about topic{i % 7} and words"} for i in range(60)]
        assert w.upsert(docs).upserted == len(docs)
    yield c
    c.stop()


def _gateway_sees(cluster: ReplicaCluster, address: str, within_s: float = 20.0) -> None:
    """ClusterInfo lists `address` as a healthy replica (the gateway dialled it without a restart)."""
    end = time.monotonic() + within_s
    with WinnowClient(cluster.gateway.address, timeout=5) as w:
        while True:
            info = w.info()
            if any(r.address == address and r.healthy for s in info.shards for r in s.replicas):
                return
            assert time.monotonic() < end, f"gateway never saw {address}: {info}"
            time.sleep(0.05)


def test_kill_9_a_replica_then_its_twin_after_it_came_back_on_a_new_port(cluster):
    with SearchLoad(cluster.gateway.address) as load:
        load.answers(20)
        cluster.kill(0, 0, signal.SIGKILL)
        load.answers(40)
        old = cluster.index[(0, 0)].address
        new = cluster.restart(0, 0)  # a new port, published in the registry
        assert new != old
        _gateway_sees(cluster, new)
        cluster.kill(0, 1, signal.SIGKILL)  # now only the replica on the new port can answer for shard 0
        load.answers(40)
        _gateway_sees(cluster, cluster.restart(0, 1))
        load.answers(10)
    assert load.failures == [] and load.partial == [], (load.failures[:3], load.partial[:3])


def test_rolling_restart_of_every_replica_keeps_full_coverage(cluster):
    with SearchLoad(cluster.gateway.address) as load:
        load.answers(10)
        for shard in range(cluster.shards):
            for replica in range(cluster.replicas):
                _gateway_sees(cluster, cluster.restart(shard, replica))  # SIGTERM (drain), new port
                load.answers(15)
    assert load.failures == [] and load.partial == [], (load.failures[:3], load.partial[:3])


def test_write_tokens_are_checked_and_every_answer_says_where_it_was_served(cluster):
    with WinnowClient(cluster.gateway.address, timeout=10) as w:
        r = w.search("topic3 words", k=5, rerank=False, no_cache=True)
        served = r.served_at
        assert served.startswith("v1.L1.0:") and ",1:" in served and not r.consistency_unmet
        # A token the replicas already applied: honoured.
        r = w.search("topic3 words", k=5, rerank=False, no_cache=True, write_token=served)
        assert not r.consistency_unmet and r.coverage.shards_answered == 2
        # One they never will (within the deadline): answered anyway, and the answer says so.
        t = time.monotonic()
        r = w.search("topic3 words", k=5, rerank=False, no_cache=True, write_token="v1.L1.0:999999", timeout=2)
        assert "999999" in r.consistency_unmet and r.coverage.shards_answered == 2 and time.monotonic() - t < 2
        # A token from another layout (before a reshard): answered without waiting, and said.
        r = w.search("topic3 words", k=5, rerank=False, no_cache=True, write_token="v1.L0.0:1")
        assert "resharded" in r.consistency_unmet
        # Bulk: the stream waits (bounded) for a replica to report the sequence, then says it could not.
        pages = list(w.bulk_search("topic3 words", threshold=-1.0, write_token="v1.L1.1:999999", timeout=2))
        assert pages[-1].last and pages[-1].total == 60 and "999999" in pages[-1].consistency_unmet
        pages = list(w.bulk_search("topic3 words", threshold=-1.0, write_token=served))
        assert not pages[-1].consistency_unmet and pages[-1].served_at.startswith("v1.L1.")
        with pytest.raises(grpc.RpcError) as err:
            w.search("topic3 words", write_token="not-a-token")
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_read_your_writes_with_the_write_token(cluster):
    """Upsert through the log, then search at once with the token: the replicas answering have applied it."""
    with WinnowClient(cluster.gateway.address, timeout=10) as w:
        for i in range(8):
            doc_id, word = f"ryw{i}", f"freshword{i}"
            token = w.upsert([{"id": doc_id, "text": f"just written {word}"}]).write_token
            assert token.startswith("v1.L1.")
            r = w.search(word, k=3, rerank=False, no_cache=True, retrieval="lexical", write_token=token)
            assert not r.consistency_unmet, r.consistency_unmet
            assert r.hits and r.hits[0].id == doc_id, [h.id for h in r.hits]
            gone = w.delete([doc_id]).write_token
            r = w.search(word, k=3, rerank=False, no_cache=True, retrieval="lexical", write_token=gone)
            assert not r.consistency_unmet and doc_id not in [h.id for h in r.hits]


def test_a_client_reads_its_own_writes_without_passing_a_token(cluster):
    """The client's session token: its own upserts and deletes are seen by its next searches, with no token passed;
    a client that opts out sends none."""
    with WinnowClient(cluster.gateway.address, timeout=10) as w:
        for i in range(6):
            doc_id, word = f"session{i}", f"sessionword{i}"
            w.upsert([{"id": doc_id, "text": f"written by this client {word}"}])
            r = w.search(word, k=3, rerank=False, no_cache=True, retrieval="lexical")
            assert not r.consistency_unmet, r.consistency_unmet
            assert r.hits and r.hits[0].id == doc_id, [h.id for h in r.hits]
            w.delete([doc_id])
            r = w.search(word, k=3, rerank=False, no_cache=True, retrieval="lexical")
            assert doc_id not in [h.id for h in r.hits]
        assert w.session_token.startswith("v1.L1.")
    with WinnowClient(cluster.gateway.address, timeout=10, read_your_writes=False) as w:
        w.upsert([{"id": "nosession", "text": "eventual"}])
        assert w._read_token("") == ""  # noqa: SLF001 - what the next search would send
