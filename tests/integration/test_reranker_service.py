"""Reranker service, real servers on port 0: the offline late-interaction default on the real all-MiniLM-L6-v2,
and the cross-encoder path on a tiny randomly initialised BERT (plumbing only, never quality)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from winnow.api.internal.reranker.v1 import reranker_pb2 as pb
from winnow.api.internal.reranker.v1 import reranker_pb2_grpc as pb_grpc
from winnow.rpc.channels import make_channel
from winnow.models.scorer import Candidate
from winnow.services.reranker.__main__ import build, build_scorer
from winnow.services.reranker.settings import CROSS_ENCODER, RerankerSettings


@pytest.fixture(scope="module")
def li_scorer():
    from winnow.models.encoder import SentenceTransformerEncoder
    from winnow.models.late_interaction import LateInteractionScorer

    return LateInteractionScorer(SentenceTransformerEncoder(device="cpu"))


@pytest.fixture(scope="module")
def tiny_cross_encoder_dir(tmp_path_factory):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from winnow.models.loading import default_model_dir

    path = tmp_path_factory.mktemp("tiny-ce")
    tok = BertTokenizerFast(vocab_file=str(default_model_dir() / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(path)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128, num_labels=1)
    BertForSequenceClassification(cfg).save_pretrained(path)
    return path


async def _serve(settings: RerankerSettings, scorer=None):
    wiring = build(settings, scorer=scorer)
    core, svc = wiring.core, wiring.service
    await svc.start()
    await core.warmup()
    await svc.mark_ready()
    channel = make_channel(f"127.0.0.1:{svc.port}", retries=False)
    return core, svc, channel


@pytest.fixture
async def served(li_scorer):
    settings = RerankerSettings(port=0, max_candidates=10, max_message_bytes=64 * 1024, drain_grace_s=0.5)
    core, svc, channel = await _serve(settings, li_scorer)
    yield core, svc, pb_grpc.RerankerStub(channel), health_pb2_grpc.HealthStub(channel)
    await channel.close()
    await svc.drain(0)
    await core.close()


def cands(*texts, ranks=None):
    return [pb.Candidate(id=f"d{i}", text=t, first_stage_rank=(ranks[i] if ranks else 0))
            for i, t in enumerate(texts)]


async def rerank(stub, query, candidates, top_n=0):
    return await stub.Rerank(pb.RerankRequest(query=query, candidates=candidates, top_n=top_n), timeout=30)


async def test_paraphrase_ranks_above_unrelated(served) -> None:
    _, _, stub, _ = served
    resp = await rerank(stub, "How do I bake bread at home?",
                        cands("The stock market fell sharply on Monday.", "A guide to making homemade bread in your oven."))
    assert [r.id for r in resp.results] == ["d1", "d0"]
    assert resp.results[0].score > resp.results[1].score
    assert resp.scorer == "late-interaction-maxsim-linear-score-fusion" and resp.model.startswith("all-MiniLM-L6-v2@")
    assert {"queue", "inference", "total"} <= set(resp.timings_ms)


async def test_sorted_top_n_index_and_truncation(served) -> None:
    _, _, stub, _ = served
    texts = ["bread baking guide", "stock prices", "bread " * 400, "ovens and flour for bread", "football results"]
    resp = await rerank(stub, "baking bread", cands(*texts, ranks=[1, 2, 3, 4, 5]), top_n=3)
    assert len(resp.results) == 3
    scores = [r.score for r in resp.results]
    assert scores == sorted(scores, reverse=True)
    for r in resp.results:
        assert r.id == f"d{r.index}"
    full = await rerank(stub, "baking bread", cands(*texts, ranks=[1, 2, 3, 4, 5]))
    assert {r.id: r.truncated for r in full.results} == {"d0": False, "d1": False, "d2": True, "d3": False, "d4": False}


async def test_concurrent_requests_share_batches(served) -> None:
    core, _, stub, _ = served
    queries = [f"question {i} about bread" for i in range(6)]
    resps = await asyncio.gather(*(rerank(stub, q, cands("bread recipe", "car engine", "wheat flour")) for q in queries))
    assert all(len(r.results) == 3 for r in resps)


@pytest.mark.parametrize(
    "query,candidates,top_n,needle",
    [
        ("q", [], 0, "candidates is empty"),
        ("   ", cands("text"), 0, "query is empty"),
        ("q", cands("a", "  "), 0, "candidates[1] (id 'd1') has no text"),
        ("q", [pb.Candidate(id="x")], 0, "has no text"),
        ("q", cands(*["t"] * 11), 0, "limit is 10"),
        ("q", cands("a"), -1, "top_n is -1"),
    ],
)
async def test_bad_input_is_invalid_argument(served, query, candidates, top_n, needle) -> None:
    _, _, stub, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await rerank(stub, query, candidates, top_n)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()


async def test_invalid_utf8_and_oversize(served) -> None:
    _, svc, stub, _ = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{svc.port}") as ch:
        raw = ch.unary_unary("/winnow.reranker.v1.Reranker/Rerank")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await raw(b"\x0a\x02\xff\xfe", timeout=5)  # query with invalid UTF-8
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        big = pb.RerankRequest(query="q", candidates=cands("word " * 20_000)).SerializeToString()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await raw(big, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len((await rerank(stub, "q", cands("still alive"))).results) == 1


async def test_health_lifecycle(li_scorer) -> None:
    settings = RerankerSettings(port=0, drain_grace_s=0.5)
    wiring = build(settings, scorer=li_scorer)
    core, svc = wiring.core, wiring.service
    await svc.start()
    channel = make_channel(f"127.0.0.1:{svc.port}", retries=False)
    health = health_pb2_grpc.HealthStub(channel)
    req = health_pb2.HealthCheckRequest(service="winnow.reranker.v1.Reranker")
    assert (await health.Check(req, timeout=5)).status == health_pb2.HealthCheckResponse.NOT_SERVING
    await core.warmup()
    await svc.mark_ready()
    watch = health.Watch(req)
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    drain = asyncio.create_task(svc.drain(1.0))
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()
    await drain
    await channel.close()
    await core.close()


async def test_cross_encoder_path(tiny_cross_encoder_dir) -> None:
    settings = RerankerSettings(port=0, scorer=CROSS_ENCODER, model_dir=str(tiny_cross_encoder_dir), device="cpu",
                                max_length=64, drain_grace_s=0.2)
    core, svc, channel = await _serve(settings, build_scorer(settings))
    try:
        stub = pb_grpc.RerankerStub(channel)
        texts = ["short one", "word " * 200, "another candidate text"]
        resp = await rerank(stub, "a query", cands(*texts), top_n=2)
        assert resp.scorer == "cross-encoder" and len(resp.results) == 2
        full = await rerank(stub, "a query", cands(*texts))
        assert {r.id: r.truncated for r in full.results} == {"d0": False, "d1": True, "d2": False}
        # in-process scores equal served ones (same model, same pairs)
        direct = core.scorer.score("a query", [Candidate(
            f"d{i}", t) for i, t in enumerate(texts)])
        for r in full.results:
            assert abs(r.score - direct[r.index]) < 1e-4
        info = await stub.Info(pb.InfoRequest(), timeout=5)
        assert info.scorer == "cross-encoder" and info.max_length == 64 and info.device == "cpu"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await rerank(stub, "q", cands("a"), top_n=-3)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await channel.close()
        await svc.drain(0)
        await core.close()


def test_cross_encoder_needs_model_dir() -> None:
    from winnow.models.loading import ModelLoadError

    with pytest.raises(ModelLoadError, match="needs model_dir"):
        build_scorer(RerankerSettings(scorer=CROSS_ENCODER))
    with pytest.raises(ModelLoadError, match="does not exist"):
        build_scorer(RerankerSettings(scorer=CROSS_ENCODER, model_dir="/nonexistent/model"))
