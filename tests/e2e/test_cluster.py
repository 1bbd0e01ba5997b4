"""The whole local cluster as real processes on loopback, with a real Redis: the end-to-end checks of search,
writes, degradation and the cache.

One cluster per module (model loading dominates); the destructive tests (killing a shard, the reranker,
Redis) run last, in file order.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from tests.conftest import sample_docs, sample_qrels, sample_queries
from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.api.internal.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from winnow.client import NO_RETRY, InvalidArgumentError, WinnowClient
from winnow.cluster.launcher import ClusterConfig, LocalCluster
from winnow.ingest import document_from_record

pytestmark = pytest.mark.slow

QUERY_IDS = ["1", "3", "5", "13"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server):
    qrels = sample_qrels()
    relevant = sorted({d for q in QUERY_IDS for d in qrels[q]})
    cfg = ClusterConfig(data_dir=tmp_path_factory.mktemp("cluster"), shards=2, gateway_port=0,
                        redis_url=redis_server.url, cache="redis")
    c = LocalCluster(cfg).start()
    docs = [document_from_record(r) for r in sample_docs(36, must_include=relevant)]
    with WinnowClient(c.gateway, timeout=120) as client:
        assert client.upsert(docs).upserted == len(docs)
    c.docs = docs  # type: ignore[attr-defined]
    yield c
    c.stop()


@pytest.fixture
def client(cluster):
    with WinnowClient(cluster.gateway, timeout=60) as w:
        yield w


def test_known_relevant_documents_are_in_the_top_10(client):
    queries, qrels = sample_queries(), sample_qrels()
    for qid in QUERY_IDS:
        r = client.search(queries[qid], k=10)
        assert r.reranked, r.rerank_skipped_reason
        assert (r.coverage.shards_asked, r.coverage.shards_answered) == (2, 2)
        top = [h.id for h in r.hits]
        assert qrels[qid] & set(top), f"query {qid}: none of {qrels[qid]} in {top}"
        assert {"embed", "search", "rerank", "total"} <= set(r.timings_ms)


def test_second_identical_search_is_a_cache_hit_and_equal(client):
    q = sample_queries()["3"]
    a = client.search(q, k=10, window=20)
    b = client.search(q, k=10, window=20)
    assert not a.cache_hit and b.cache_hit
    assert [(h.id, h.score) for h in a.hits] == [(h.id, h.score) for h in b.hits]


def test_upsert_changes_the_next_search(client):
    q = "zebrafish fin regeneration depends on osteoblast dedifferentiation"
    before = client.search(q, k=5)
    client.search(q, k=5)  # now cached
    client.upsert([{"id": "new-doc", "text": q + " in adult fish", "metadata": {"kind": "test"}}])
    after = client.search(q, k=5)
    assert not after.cache_hit
    assert "new-doc" not in [h.id for h in before.hits]
    assert after.hits[0].id == "new-doc"
    got = client.get(["new-doc", "missing-doc"])
    assert [d.id for d in got.documents] == ["new-doc"] and list(got.missing) == ["missing-doc"]
    assert client.delete(["new-doc"]).deleted == 1
    assert "new-doc" not in [h.id for h in client.search(q, k=5).hits]


def test_bulk_returns_every_document_above_the_threshold(cluster, client):
    q = sample_queries()["13"]
    # Brute force over the same vectors: the embedder service embeds every document and the query.
    embedder = next(p.address for n, p in cluster.procs.items() if n == "embedder")
    with grpc.insecure_channel(embedder) as ch:
        stub = embedder_pb2_grpc.EmbedderStub(ch)
        docs = cluster.docs
        dv = stub.Embed(embedder_pb2.EmbedRequest(texts=[d["text"] for d in docs],
                                                  kind=embedder_pb2.INPUT_KIND_DOCUMENT), timeout=120)
        qv = stub.Embed(embedder_pb2.EmbedRequest(texts=[q], kind=embedder_pb2.INPUT_KIND_QUERY), timeout=30)
    scores = np.array([e.values for e in dv.embeddings]) @ np.array(qv.embeddings[0].values)
    threshold = float(np.sort(scores)[-12])  # about a dozen documents pass
    expected = {d["id"] for d, s in zip(docs, scores) if s >= threshold + 1e-4}
    borderline = {d["id"] for d, s in zip(docs, scores) if abs(s - threshold) <= 1e-4}
    pages = list(client.bulk_search(q, threshold=threshold, page_size=5))
    got = [h.id for p in pages for h in p.hits]
    assert len(got) == len(set(got))
    assert expected <= set(got) <= expected | borderline
    assert pages[-1].last and pages[-1].total == len(got) and len(pages) >= 2
    assert all(len(p.hits) <= 5 for p in pages)


@pytest.mark.parametrize("request_kw, code", [
    ({"query": ""}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"query": "x", "k": 0, "candidate_window": 10, "mode": 7}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"query": "x", "k": 5000}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"query": "x", "k": 50, "candidate_window": 10}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"query": "x", "mode": pb.MODE_BULK}, grpc.StatusCode.INVALID_ARGUMENT),
])
def test_bad_requests_get_a_clear_status(client, request_kw, code):
    with pytest.raises(grpc.RpcError) as err:
        client.stub.Search(pb.SearchRequest(**request_kw), timeout=10)
    assert err.value.code() == code
    assert err.value.details() and "Traceback" not in err.value.details()


def test_k_zero_means_default_and_negative_k_cannot_be_sent(client):
    r = client.search("insulin", k=0, window=0)
    assert 0 < len(r.hits) <= 64


def test_deadline_already_past(client):
    with pytest.raises(grpc.RpcError) as err:
        # 1 ms: gone before the gateway can embed the query (grpc treats sub-ms timeouts as none).
        client.stub.Search(pb.SearchRequest(query="insulin", no_cache=True), timeout=0.001)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_bad_upserts_write_nothing(client):
    with pytest.raises(InvalidArgumentError):  # the client's own check: nothing sent
        client.upsert([{"id": "ok-1", "text": "fine"}, {"id": "", "text": "no id"}])
    with pytest.raises(grpc.RpcError) as err:  # the gateway's all-or-nothing check
        client.stub.Upsert(pb.UpsertRequest(documents=[pb.Document(id="ok-1", text="fine"),
                                                       pb.Document(id="", text="no id")]), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(client.get(["ok-1"]).missing) == ["ok-1"]


def test_metadata_filters_apply_inside_the_search(client):
    docs = [{"id": f"f{i}", "text": f"mitochondrial dysfunction in neurons, study {i}",
             "metadata": {"lab": "a" if i % 2 else "b", "year": 2000 + i}} for i in range(6)]
    client.upsert(docs)
    r = client.search("mitochondrial dysfunction in neurons", k=10, filters={"lab": "a"}, rerank=False)
    assert {h.id for h in r.hits} == {"f1", "f3", "f5"}
    r = client.search("mitochondrial dysfunction", k=10, filters={"lab": "b", "year": 2004}, rerank=False)
    assert [h.id for h in r.hits] == ["f4"]
    client.delete([d["id"] for d in docs])


# --- destructive: keep these last ------------------------------------------------------------------------------

def test_redis_down_serves_uncached(cluster, client, redis_server):
    redis_server.stop()
    q = sample_queries()["5"]
    a = client.search(q, k=5)
    b = client.search(q, k=5)
    assert a.hits and not b.cache_hit and [h.id for h in a.hits] == [h.id for h in b.hits]


def test_log_outage_fails_writes_fast_and_loses_no_acknowledged_write(cluster, client):
    import time

    first = client.upsert([{"id": "before-outage", "text": "acknowledged just before nats-server died"}]).write_token
    cluster.kill("nats")  # kill -9
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:  # the gateway's own fail-fast: no client-side retries
        with WinnowClient(client.target, retry=NO_RETRY, timeout=30) as once:
            once.upsert([{"id": "during-outage", "text": "never acknowledged"}])
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "document log" in err.value.details()
    assert time.monotonic() - t0 < 5
    assert client.search("acknowledged before nats died", k=3, rerank=False).hits  # searches go on
    cluster.restart("nats")
    end = time.monotonic() + 30
    while True:  # the gateway's log client reconnects by itself
        try:
            token = client.upsert([{"id": "after-outage", "text": "written once nats-server was back"}]).write_token
            break
        except grpc.RpcError:
            assert time.monotonic() < end, "writes did not resume after nats-server came back"
            time.sleep(0.2)
    # Read-your-writes: the replicas reconnect to the restarted log by themselves (their consumer comes back a
    # moment after the gateway's publisher), so a search with each token is honoured within a bounded time.
    for t in (first, token):
        end = time.monotonic() + 30
        while True:
            r = client.search("acknowledged just before nats-server died", k=5, rerank=False, no_cache=True,
                              write_token=t)
            if not r.consistency_unmet:
                break
            assert time.monotonic() < end, f"replicas did not follow the log again: {r.consistency_unmet}"
            time.sleep(0.2)
    got = client.get(["before-outage", "during-outage", "after-outage"])
    assert [d.id for d in got.documents] == ["before-outage", "after-outage"]


def test_stopped_reranker_gives_flagged_first_stage_results(cluster, client):
    cluster.stop(names=["reranker"])
    r = client.search(sample_queries()["1"], k=10, no_cache=True)
    assert not r.reranked and r.rerank_skipped_reason
    assert [h.first_stage_rank for h in r.hits] == list(range(1, len(r.hits) + 1))


def test_killed_shard_gives_partial_coverage(cluster, client):
    cluster.kill("shard-1-r0")
    r = client.search(sample_queries()["3"], k=10, no_cache=True, rerank=False)
    assert (r.coverage.shards_asked, r.coverage.shards_answered) == (2, 1)
    assert r.coverage.failed_shards and r.hits
