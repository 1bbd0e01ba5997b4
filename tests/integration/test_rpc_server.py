"""The shared gRPC edge (winnow.rpc.server) over a real socket: parsing, auth, admission, error mapping, health."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from winnow.api.internal.embedder.v1 import embedder_pb2 as pb
from winnow.common.errors import InvalidArgument, Unavailable
from winnow.rpc.server import GrpcService
from winnow.common.settings import ServiceSettings

SERVICE = "winnow.test.Echo"


class Behaviour:
    def __init__(self):
        self.gate = asyncio.Event()

    async def echo(self, request: pb.EmbedRequest, context) -> pb.EmbedResponse:
        text = request.texts[0] if request.texts else ""
        if text == "bad":
            raise InvalidArgument("texts[0] is bad: send something else")
        if text == "down":
            raise Unavailable("backend is down")
        if text == "bug":
            raise KeyError("secret internal detail")
        if text == "wait":
            await self.gate.wait()
        return pb.EmbedResponse(model=text)


def _register(behaviour):
    def register(server):
        handler = grpc.unary_unary_rpc_method_handler(
            behaviour.echo, request_deserializer=pb.EmbedRequest.FromString,
            response_serializer=pb.EmbedResponse.SerializeToString)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Echo": handler}),))
        return [SERVICE]
    return register


@pytest.fixture
async def served():
    behaviour = Behaviour()
    settings = ServiceSettings(max_inflight=2, max_message_bytes=4096, auth_token="s3cret", drain_grace_s=0.5)
    svc = GrpcService("test", settings, _register(behaviour))
    port = await svc.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    call = channel.unary_unary(f"/{SERVICE}/Echo", request_serializer=lambda b: b,
                               response_deserializer=pb.EmbedResponse.FromString)
    yield svc, channel, call, behaviour
    await channel.close()
    await svc.drain(0)


AUTH = (("authorization", "Bearer s3cret"),)


async def _code(call, raw: bytes, metadata=AUTH):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(raw, metadata=metadata, timeout=5)
    return err.value.code(), err.value.details()


async def test_ok_and_request_id_trailer(served):
    _, _, call, _ = served
    c = call(pb.EmbedRequest(texts=["hi"]).SerializeToString(), metadata=(*AUTH, ("x-request-id", "rid-1")), timeout=5)
    assert (await c).model == "hi"
    assert ("x-request-id", "rid-1") in tuple(await c.trailing_metadata())


async def test_auth_required(served):
    _, _, call, _ = served
    raw = pb.EmbedRequest(texts=["hi"]).SerializeToString()
    assert (await _code(call, raw, metadata=()))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert (await _code(call, raw, metadata=(("authorization", "Bearer nope"),)))[0] == grpc.StatusCode.UNAUTHENTICATED


async def test_domain_errors_map_through_the_table(served):
    _, _, call, _ = served
    code, msg = await _code(call, pb.EmbedRequest(texts=["bad"]).SerializeToString())
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "send something else" in msg
    code, _ = await _code(call, pb.EmbedRequest(texts=["down"]).SerializeToString())
    assert code == grpc.StatusCode.UNAVAILABLE


async def test_unhandled_error_is_internal_without_leaking(served):
    _, _, call, _ = served
    code, msg = await _code(call, pb.EmbedRequest(texts=["bug"]).SerializeToString())
    assert code == grpc.StatusCode.INTERNAL and "request id" in msg and "secret" not in msg


async def test_invalid_utf8_and_oversize_are_invalid_argument(served):
    _, _, call, _ = served
    bad_utf8 = b"\x0a\x02\xff\xfe"  # field 1 (texts), 2 bytes that are not UTF-8
    code, msg = await _code(call, bad_utf8)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "UTF-8" in msg
    code, msg = await _code(call, pb.EmbedRequest(texts=["x" * 5000]).SerializeToString())
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "limit is 4096" in msg


async def test_admission_control_fails_fast(served):
    _, _, call, behaviour = served
    wait = pb.EmbedRequest(texts=["wait"]).SerializeToString()
    held = [asyncio.ensure_future(call(wait, metadata=AUTH, timeout=10)) for _ in range(2)]
    await asyncio.sleep(0.2)  # let both reach the handler
    code, msg = await _code(call, pb.EmbedRequest(texts=["hi"]).SerializeToString())
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "retry" in msg
    behaviour.gate.set()
    assert [r.model for r in await asyncio.gather(*held)] == ["wait", "wait"]


async def test_health_lifecycle(served):
    svc, channel, _, _ = served
    health = health_pb2_grpc.HealthStub(channel)

    async def status(name=""):
        return (await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)).status

    assert await status() == health_pb2.HealthCheckResponse.NOT_SERVING
    await svc.mark_ready()
    assert await status() == await status(SERVICE) == health_pb2.HealthCheckResponse.SERVING
    drain = asyncio.ensure_future(svc.drain(0.5))
    await asyncio.sleep(0.05)
    try:
        assert await status() == health_pb2.HealthCheckResponse.NOT_SERVING
    except grpc.aio.AioRpcError as err:  # already stopped: also not serving
        assert err.code() == grpc.StatusCode.UNAVAILABLE
    await drain
