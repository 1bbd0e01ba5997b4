"""Bring your own vectors through the public API, on a real local cluster (embedder, 2 shards, gateway).

Documents upserted with the embedder's own vectors must be found exactly like text-upserted ones; a search
with a query vector must match the same search by text; bad vectors are INVALID_ARGUMENT naming the field,
with nothing written; the result cache keys on the vector.
"""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest

from tests.conftest import sample_docs, sample_queries
from winnow.api.internal.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from winnow.client import WinnowClient
from winnow.cluster.launcher import ClusterConfig, LocalCluster
from winnow.ingest import document_from_record

pytestmark = pytest.mark.slow


def _embed(target: str, texts: list[str], kind) -> np.ndarray:
    with grpc.insecure_channel(target) as ch:
        resp = embedder_pb2_grpc.EmbedderStub(ch).Embed(embedder_pb2.EmbedRequest(texts=texts, kind=kind), timeout=120)
    return np.array([e.values for e in resp.embeddings], dtype=np.float32)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cfg = ClusterConfig(data_dir=tmp_path_factory.mktemp("vectors"), shards=2, gateway_port=0, cache="memory",
                        reranker=False)
    c = LocalCluster(cfg).start()
    docs = [document_from_record(r) for r in sample_docs(30)]
    vecs = _embed(c.procs["embedder"].address, [d["text"] for d in docs], embedder_pb2.INPUT_KIND_DOCUMENT)
    half = len(docs) // 2  # first half with the caller's vectors, second half embedded by the gateway
    with WinnowClient(c.gateway, timeout=120) as w:
        r = w.upsert([{**d, "vector": v} for d, v in zip(docs[:half], vecs[:half])])
        assert "embed" not in r.timings_ms  # the embedder was skipped
        w.upsert(docs[half:])
    c.docs, c.vecs = docs, vecs  # type: ignore[attr-defined]
    yield c
    c.stop()


@pytest.fixture
def client(cluster):
    with WinnowClient(cluster.gateway, timeout=60) as w:
        yield w


def _ids(resp) -> list[str]:
    return [h.id for h in resp.hits]


def test_cluster_info_names_the_collections_space(client):
    info = client.info()
    assert info.vector_model.startswith("all-MiniLM-L6-v2@") and info.dimension == 384


def test_query_vector_matches_the_text_search(client, cluster):
    for q in list(sample_queries().values())[:3]:
        qv = _embed(cluster.procs["embedder"].address, [q], embedder_pb2.INPUT_KIND_QUERY)[0]
        for retrieval in ("dense", "hybrid"):
            by_text = client.search(q, k=10, retrieval=retrieval, rerank=False, no_cache=True)
            by_vec = client.search(q if retrieval == "hybrid" else "", k=10, retrieval=retrieval, vector=qv,
                                   no_cache=True, rerank=False)
            assert _ids(by_vec) == _ids(by_text), retrieval
            assert "embed" not in by_vec.timings_ms and "embed" in by_text.timings_ms
    dense_only = client.search("", vector=cluster.vecs[0], retrieval="dense", k=3, no_cache=True)
    assert dense_only.hits[0].id == cluster.docs[0]["id"] and dense_only.hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert not dense_only.reranked


def test_bulk_search_with_a_vector(client, cluster):
    pages = list(client.bulk_search("", threshold=0.99, vector=cluster.vecs[1]))
    assert [h.id for p in pages for h in p.hits] == [cluster.docs[1]["id"]]


def test_the_cache_keys_on_the_vector(client, cluster):
    q = "cell biology"
    a = client.search(q, k=5, vector=cluster.vecs[2], rerank=False)
    b = client.search(q, k=5, vector=cluster.vecs[3], rerank=False)
    again = client.search(q, k=5, vector=cluster.vecs[2], rerank=False)
    assert not b.cache_hit and _ids(a) != _ids(b)
    assert _ids(again) == _ids(a)


@pytest.mark.parametrize("vector,model,needle", [
    ([0.1] * 383, "", "documents[1].vector has 383 components"),
    ([math.nan] + [0.1] * 383, "", "documents[1].vector[0] is nan"),
    ([0.1] * 383 + [math.inf], "", "documents[1].vector[383] is inf"),
    ([0.1] * 384, "e5-small-v2", "vector_model='e5-small-v2'"),
])
def test_bad_document_vectors_write_nothing(client, vector, model, needle):
    docs = [{"id": "new-a", "text": "fine", "vector": [0.05] * 384}, {"id": "new-b", "text": "bad", "vector": vector}]
    with pytest.raises(grpc.RpcError) as e:
        client.upsert(docs, vector_model=model)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and needle in e.value.details()
    assert sorted(client.get(["new-a", "new-b"]).missing) == ["new-a", "new-b"]


@pytest.mark.parametrize("query,opts,needle", [
    ("x", dict(vector=[0.1] * 10), "query_vector has 10 components"),
    ("x", dict(vector=[math.inf] * 384), "query_vector[0] is inf"),
    ("", dict(vector=[0.1] * 384), "hybrid retrieval needs the text for BM25"),
    ("x", dict(vector=[0.1] * 384, vector_model="openai-3-small"), "vector_model='openai-3-small'"),
    ("", dict(vector=[0.1] * 384, retrieval="dense", rerank=True), "rerank needs the query text"),
])
def test_bad_query_vectors(client, query, opts, needle):
    with pytest.raises(grpc.RpcError) as e:
        client.search(query, **opts)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and needle in e.value.details()
