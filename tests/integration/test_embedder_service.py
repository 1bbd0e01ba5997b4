"""Embedder service, real server on port 0 with the real all-MiniLM-L6-v2, real client channel."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from winnow.api.internal.embedder.v1 import embedder_pb2 as pb
from winnow.api.internal.embedder.v1 import embedder_pb2_grpc as pb_grpc
from winnow.rpc.channels import make_channel
from winnow.services.embedder.__main__ import build
from winnow.services.embedder.settings import EmbedderSettings


@pytest.fixture(scope="module")
def encoder():
    from winnow.models.encoder import SentenceTransformerEncoder

    return SentenceTransformerEncoder(device="cpu")


@pytest.fixture
async def served(encoder):
    settings = EmbedderSettings(port=0, max_texts=8, max_message_bytes=64 * 1024, drain_grace_s=0.5)
    wiring = build(settings, encoder=encoder)
    core, svc = wiring.core, wiring.service
    await svc.start()
    channel = make_channel(f"127.0.0.1:{svc.port}", retries=False)
    health = health_pb2_grpc.HealthStub(channel)
    before = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    await core.warmup()
    await svc.mark_ready()
    yield core, svc, pb_grpc.EmbedderStub(channel), health, before.status
    await channel.close()
    await svc.drain(0)
    await core.close()


async def embed(stub, texts, kind=pb.INPUT_KIND_DOCUMENT, dimension=0):
    return await stub.Embed(pb.EmbedRequest(texts=texts, kind=kind, dimension=dimension), timeout=30)


async def test_served_equals_in_process(served, encoder) -> None:
    _, _, stub, _, _ = served
    texts = ["Vitamin D deficiency is associated with bone fractures.", "a cat sat on the mat", "x " * 400]
    resp = await embed(stub, texts)
    served_vecs = np.array([e.values for e in resp.embeddings])
    ref = encoder.sentence_transformer.encode(texts, normalize_embeddings=True)
    assert np.abs(served_vecs - ref).max() < 1e-5
    assert resp.dimension == 384 and resp.model.startswith("all-MiniLM-L6-v2@")
    assert [e.truncated for e in resp.embeddings] == [False, False, True]
    assert resp.embeddings[2].tokens == 256
    assert {"queue", "inference", "total"} <= set(resp.timings_ms)


async def test_mrl_unit_length_and_dimension(served) -> None:
    _, _, stub, _, _ = served
    for dim in (32, 64, 128, 256):
        resp = await embed(stub, ["protein folding", "gene expression in mice"], dimension=dim)
        assert resp.dimension == dim
        for e in resp.embeddings:
            assert len(e.values) == dim
            assert abs(np.linalg.norm(e.values) - 1.0) < 1e-5


async def test_paraphrase_closer_than_unrelated(served) -> None:
    _, _, stub, _, _ = served
    resp = await embed(stub, ["How do I bake bread at home?"], kind=pb.INPUT_KIND_QUERY)
    docs = await embed(stub, ["A guide to making homemade bread in your oven.", "The stock market fell on Monday."])
    q = np.array(resp.embeddings[0].values)
    para, unrelated = (np.dot(q, e.values) for e in docs.embeddings)
    assert para > unrelated + 0.2


async def test_concurrent_requests_get_their_own_vectors(served, encoder) -> None:
    _, _, stub, _, _ = served
    texts = [f"document number {i} about topic {i % 3}" for i in range(12)]
    resps = await asyncio.gather(*(embed(stub, [t]) for t in texts))
    ref = encoder.sentence_transformer.encode(texts, normalize_embeddings=True)
    got = np.array([r.embeddings[0].values for r in resps])
    assert np.abs(got - ref).max() < 1e-5


async def test_info(served) -> None:
    _, _, stub, _, _ = served
    info = await stub.Info(pb.InfoRequest(), timeout=5)
    assert info.dimension == 384 and list(info.allowed_dimensions) == [32, 64, 128, 256, 384]
    assert info.device == "cpu" and info.dtype == "float32" and info.max_seq_length == 256
    assert info.max_batch_texts == 8


@pytest.mark.parametrize(
    "texts,dimension,needle",
    [
        ([], 0, "texts is empty"),
        (["ok", "   "], 0, "texts[1] is empty or whitespace-only"),
        ([""], 0, "texts[0]"),
        (["t"] * 9, 0, "limit is 8"),
        (["fine"], 100, "dimension 100 is not allowed"),
        (["fine"], 1000, "dimension 1000 is not allowed"),
    ],
)
async def test_bad_input_is_invalid_argument(served, texts, dimension, needle) -> None:
    _, _, stub, _, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await embed(stub, texts, dimension=dimension)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()


async def test_invalid_utf8_and_oversize_are_invalid_argument(served) -> None:
    _, svc, _, _, _ = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{svc.port}") as ch:
        raw = ch.unary_unary("/winnow.embedder.v1.Embedder/Embed")
        bad_utf8 = b"\x0a\x02\xff\xfe"  # field 1 (texts), length 2, invalid UTF-8
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await raw(bad_utf8, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        big = pb.EmbedRequest(texts=["word " * 20_000]).SerializeToString()  # 100 kB > 64 kB limit
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await raw(big, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "limit" in err.value.details()
    # the service is still fine
    stub = pb_grpc.EmbedderStub(make_channel(f"127.0.0.1:{svc.port}"))
    assert len((await embed(stub, ["still alive"])).embeddings) == 1


async def test_health_not_serving_serving_then_drain(served) -> None:
    _, svc, _, health, before = served
    assert before == health_pb2.HealthCheckResponse.NOT_SERVING
    watch = health.Watch(health_pb2.HealthCheckRequest(service="winnow.embedder.v1.Embedder"))
    first = await watch.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    drain = asyncio.create_task(svc.drain(1.0))
    second = await watch.read()
    assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()
    await drain


async def test_probe_touches_the_model(served) -> None:
    core, _, _, _, _ = served
    calls = []
    original = core.encoder.forward

    def spy(batch):
        calls.append(len(batch))
        return original(batch)

    core.encoder.forward = spy  # type: ignore[method-assign]
    try:
        # The probe never waits behind model work: it returns at once and runs its forward pass in the background.
        assert await core.probe() is True
        for _ in range(200):
            if calls:
                break
            await asyncio.sleep(0.02)
    finally:
        del core.encoder.forward
    assert calls == [1]
