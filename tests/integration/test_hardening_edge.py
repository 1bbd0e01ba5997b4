"""The shared edge's hardening over a real socket: liveness apart from readiness, readiness checks, and the
admission gate refusing at once with a retry hint."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.test_rpc_server import SERVICE, Behaviour, _register
from winnow.api.internal.embedder.v1 import embedder_pb2 as pb
from winnow.rpc.server import GrpcService
from winnow.common.settings import ServiceSettings

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def gated():
    behaviour = Behaviour()
    settings = ServiceSettings(max_inflight=8, max_concurrent=1, max_queue_wait_ms=2000, drain_grace_s=0.2,
                               health_interval_s=0.05, health_failures_to_flip=1)
    svc = GrpcService("test", settings, _register(behaviour))
    port = await svc.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    call = channel.unary_unary(f"/{SERVICE}/Echo", request_serializer=lambda b: b,
                               response_deserializer=pb.EmbedResponse.FromString)
    yield svc, channel, call, behaviour
    await channel.close()
    await svc.drain(0)


async def test_liveness_serves_while_readiness_does_not(gated):
    svc, channel, _, _ = gated
    health = health_pb2_grpc.HealthStub(channel)

    async def status(name):
        return (await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)).status

    assert (await status("liveness"), await status(""), await status("readiness")) == (SERVING, NOT_SERVING,
                                                                                         NOT_SERVING)
    caught_up = {"ok": False}
    svc.add_readiness_check("caught_up", lambda: caught_up["ok"] or "replica at seq 1, needs 5")
    await svc.mark_ready()
    for _ in range(200):  # the watcher runs every 50 ms
        if await status("") == NOT_SERVING:
            break
        await asyncio.sleep(0.02)
    assert await status("") == NOT_SERVING and svc.readiness.reasons == {"caught_up": "replica at seq 1, needs 5"}
    assert await status("liveness") == SERVING
    caught_up["ok"] = True
    for _ in range(200):
        if await status(SERVICE) == SERVING:
            break
        await asyncio.sleep(0.02)
    assert await status("") == await status(SERVICE) == SERVING


async def test_a_request_that_cannot_be_served_in_time_is_refused_at_once_with_a_retry_hint(gated):
    _, _, call, behaviour = gated
    wait = pb.EmbedRequest(texts=["wait"]).SerializeToString()
    held = asyncio.ensure_future(call(wait, timeout=10))
    await asyncio.sleep(0.2)
    # The gate has no service time yet: a waiter with a short deadline leaves no time to run -> refused at once.
    t = time.perf_counter()
    c = call(pb.EmbedRequest(texts=["hi"]).SerializeToString(), timeout=0.3)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert time.perf_counter() - t < 0.1 or "waited" in err.value.details()
    assert any(k == "retry-after-ms" and int(v) >= 10 for k, v in err.value.trailing_metadata())
    queued = asyncio.ensure_future(call(pb.EmbedRequest(texts=["hi"]).SerializeToString(), timeout=10))
    await asyncio.sleep(0.1)
    behaviour.gate.set()
    assert (await held).model == "wait" and (await queued).model == "hi"  # the waiter got the slot


async def test_a_cost_class_has_its_own_gate_so_cheap_requests_pass_a_full_expensive_one():
    behaviour = Behaviour()
    settings = ServiceSettings(max_inflight=8, max_concurrent=1, max_queue_wait_ms=2000, drain_grace_s=0.2)
    seen = []

    def classify(method, request):
        seen.append((method, type(request).__name__))
        return ("Echo/cheap", 2) if request.texts and request.texts[0] == "cheap" else None

    svc = GrpcService("test", settings, _register(behaviour), classify=classify)
    port = await svc.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(f"/{SERVICE}/Echo", request_serializer=lambda b: b,
                                       response_deserializer=pb.EmbedResponse.FromString)
            held = asyncio.ensure_future(call(pb.EmbedRequest(texts=["wait"]).SerializeToString(), timeout=10))
            await asyncio.sleep(0.2)
            # the method's gate (cap 1) is full: a plain request with a short deadline is refused ...
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(pb.EmbedRequest(texts=["hi"]).SerializeToString(), timeout=0.3)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            # ... while the cheap class, classified on the parsed request, runs at once through its own gate
            cheap = await asyncio.gather(*(call(pb.EmbedRequest(texts=["cheap"]).SerializeToString(), timeout=0.3)
                                           for _ in range(2)))
            assert [r.model for r in cheap] == ["cheap", "cheap"]
            behaviour.gate.set()
            assert (await held).model == "wait"
    finally:
        await svc.drain(0)
    assert ("Echo", "EmbedRequest") in seen
