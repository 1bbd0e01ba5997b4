"""The eval runner against an in-process fake gateway (real grpc.aio server on port 0, real client channel).

The fake ranks by word overlap, so the expected rankings are known by construction. It tests the runner's
plumbing (ingest batching, request options per pipeline, bulk paging, scoring, failures, latency); quality
figures never come from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.api.gateway.v1 import gateway_pb2_grpc as pb_grpc
from winnow.rpc.channels import make_channel
from winnow.rpc.server import GrpcService
from winnow.common.settings import ServiceSettings
from winnow.eval.beir import BeirDataset, Document
from winnow.eval.cli import format_table
from winnow.eval.runner import PIPELINES, EvalOptions, evaluate_target, select_pipelines


def _words(text: str) -> set[str]:
    return set(text.lower().replace(".", " ").split())


class FakeGateway(pb_grpc.GatewayServicer):
    """Ranks documents by word overlap with the query; fails queries containing 'explode'."""

    def __init__(self) -> None:
        self.docs: dict[str, str] = {}
        self.upsert_sizes: list[int] = []
        self.requests: list[pb.SearchRequest] = []
        self.bulk_requests: list[pb.BulkSearchRequest] = []

    def _rank(self, query: str) -> list[tuple[str, int]]:
        q = _words(query)
        scored = [(doc_id, len(q & _words(text))) for doc_id, text in self.docs.items()]
        return sorted((s for s in scored if s[1] > 0), key=lambda s: (-s[1], s[0]))

    async def Upsert(self, request, context):
        self.upsert_sizes.append(len(request.documents))
        for d in request.documents:
            self.docs[d.id] = d.text
        return pb.UpsertResponse(upserted=len(request.documents))

    async def Search(self, request, context):
        self.requests.append(request)
        if "explode" in request.query:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "shard on fire")
        hits = [pb.Hit(id=d, score=float(s)) for d, s in self._rank(request.query)[: request.k]]
        return pb.SearchResponse(hits=hits, reranked=request.rerank,
                                 timings_ms={"embed": 1.0, "search": 2.0, "total": 4.0})

    async def BulkSearch(self, request, context):
        self.bulk_requests.append(request)
        hits = [pb.Hit(id=d, score=float(s)) for d, s in self._rank(request.query)]
        for page, start in enumerate(range(0, max(len(hits), 1), 2)):
            chunk = hits[start : start + 2]
            yield pb.BulkSearchPage(hits=chunk, page=page, last=start + 2 >= len(hits), total=len(hits),
                                    timings_ms={"embed": 1.0, "total": 3.0})

    async def ClusterInfo(self, request, context):
        return pb.ClusterInfoResponse(documents=len(self.docs), embedder_model="fake-overlap")


@pytest.fixture
async def gateway():
    fake = FakeGateway()
    svc = GrpcService("fake-gateway", ServiceSettings(host="127.0.0.1", port=0),
                      lambda server: [pb_grpc.add_GatewayServicer_to_server(fake, server) or "winnow.gateway.v1.Gateway"])
    port = await svc.start()
    await svc.mark_ready()
    channel = make_channel(f"127.0.0.1:{port}")
    health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    yield fake, channel
    await channel.close()
    await svc.drain(grace=0)


def _dataset() -> BeirDataset:
    corpus = {
        "d1": Document("d1", "Cats", "cats purr loudly"),
        "d2": Document("d2", "Dogs", "dogs bark at night"),
        "d3": Document("d3", "Birds", "birds sing at dawn"),
        "d4": Document("d4", "", "night birds hunt"),
    }
    queries = {"q1": "purr", "q2": "night birds", "q3": "explode now"}
    qrels = {"q1": {"d1": 1}, "q2": {"d3": 1}, "q3": {"d2": 1}}
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels, split="test", root=Path("tiny"))


async def test_runner_scores_known_rankings(gateway) -> None:
    fake, channel = gateway
    options = EvalOptions(ingest_batch=3, threshold=0.4)
    report = await evaluate_target(channel, _dataset(), select_pipelines(["bm25", "hybrid-rrf", "hybrid+rerank", "mrl64", "bulk"]),
                                   options)
    assert sorted(fake.upsert_sizes) == [1, 3]
    assert fake.docs["d1"] == "Cats cats purr loudly" and fake.docs["d4"] == "night birds hunt"
    assert report.cluster["documents"] == 4

    bm25 = report.pipelines["lexical"]
    # q1: d1 at rank 1 → 1. q2: d4 (2 shared words), then d2 and d3 (1 each, tie → id order) → d3 at rank 3,
    # nDCG 1/log2(4) = 0.5, RR 1/3. q3 fails → 0, still averaged in.
    assert bm25.metrics["ndcg@10"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert bm25.metrics["mrr@10"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert bm25.errors == 1 and "UNAVAILABLE" in bm25.first_error
    assert bm25.latency_ms["embed"] == {"p50": 1.0, "p99": 1.0}
    assert "client" in bm25.latency_ms

    bm25_reqs = [r for r in fake.requests if r.retrieval == pb.RETRIEVAL_LEXICAL]
    assert all(r.k == 100 and r.candidate_window == 100 and not r.rerank and r.no_cache for r in bm25_reqs)
    rerank_reqs = [r for r in fake.requests if r.rerank]
    assert rerank_reqs and all(r.k == 80 and r.candidate_window == 80 for r in rerank_reqs)
    assert report.pipelines["hybrid+rerank"].reranked == 2
    assert {r.mrl_dim for r in fake.requests if r.retrieval == pb.RETRIEVAL_DENSE and r.mode == pb.MODE_PRECISION} == {64}

    bulk = report.pipelines["bulk"]
    assert bulk.bulk is not None and bulk.bulk["threshold"] == 0.4
    # q1 returns {d1}: recall 1, precision 1; q2 returns {d4, d3, d2}: recall 1, precision 1/3; q3 returns nothing.
    assert bulk.bulk["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert bulk.bulk["precision"] == pytest.approx((1 + 1 / 3) / 3, abs=1e-4)
    assert bulk.bulk["returned_max"] == 3
    assert fake.bulk_requests and all(r.threshold == pytest.approx(0.4) for r in fake.bulk_requests)

    out = report.to_json()
    assert {r.fusion for r in fake.requests if r.retrieval == pb.RETRIEVAL_HYBRID and not r.rerank} == {pb.FUSION_RRF}
    assert {r.fusion for r in fake.requests if r.rerank} == {pb.FUSION_UNSPECIFIED}
    assert set(out) == {"lexical", "hybrid-rrf", "hybrid+rerank", "mrl64", "bulk"}
    assert {"ndcg@10", "recall@80", "recall@100", "mrr@10"} <= set(out["lexical"])
    json.dumps(out)
    table = format_table(report)
    assert "hybrid+rerank" in table and "bulk: threshold 0.4" in table and "1 queries failed" in table


def test_select_pipelines_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="unknown pipeline"):
        select_pipelines(["bm25", "magic"])
    assert [p.name for p in select_pipelines(PIPELINES)] == list(PIPELINES)
