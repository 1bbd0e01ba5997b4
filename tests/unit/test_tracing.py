"""Tracing: spans across a real in-process grpc.aio hop (GrpcService + make_channel), W3C context propagation."""

from __future__ import annotations

import asyncio
import socket
from importlib.util import find_spec

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.trace import SpanKind, StatusCode

from winnow.rpc import tracing
from winnow.rpc.channels import make_channel
from winnow.common.errors import InvalidArgument
from winnow.common.logs import request_id_var
from winnow.rpc.server import GrpcService
from winnow.common.settings import ServiceSettings

SERVICE = "test.Stage"


async def _ping(request: bytes, context) -> bytes:
    with tracing.span("inner", size=len(request)):
        if request == b"bad":
            raise InvalidArgument("bad request")
        if request == b"boom":
            raise RuntimeError("a bug")
        return request


async def _pages(request: bytes, context):
    for i in range(3):
        yield request + bytes([i])


def _register(server: grpc.aio.Server) -> list[str]:
    handlers = {
        "Ping": grpc.unary_unary_rpc_method_handler(_ping),
        "Pages": grpc.unary_stream_rpc_method_handler(_pages),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    return [SERVICE]


@pytest.fixture
def exporter():
    exp = tracing.configure("memory", service="test")
    yield exp
    tracing.shutdown()


@pytest.fixture
async def target(exporter):
    svc = GrpcService("test", ServiceSettings(host="127.0.0.1", port=0), _register)
    await svc.start()
    await svc.mark_ready()
    channel = make_channel(f"127.0.0.1:{svc.port}")
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    yield channel
    await channel.close()
    await svc.drain(0)


def _by_name(spans, name):
    found = [s for s in spans if s.name == name]
    assert found, f"no span {name!r} in {[s.name for s in spans]}"
    return found


async def test_client_span_is_parent_of_server_span(exporter, target):
    ping = target.unary_unary(f"/{SERVICE}/Ping")
    token = request_id_var.set("rid-unary-1")
    try:
        with tracing.span("root") as root:
            assert await ping(b"hi", timeout=5) == b"hi"
    finally:
        request_id_var.reset(token)
    spans = exporter.get_finished_spans()
    root_ctx = root.get_span_context()
    (client,) = [s for s in _by_name(spans, f"{SERVICE}/Ping") if s.kind is SpanKind.CLIENT]
    (server,) = [s for s in _by_name(spans, f"{SERVICE}/Ping") if s.kind is SpanKind.SERVER]
    (inner,) = _by_name(spans, "inner")
    assert {s.context.trace_id for s in (client, server, inner)} == {root_ctx.trace_id}
    assert client.parent.span_id == root_ctx.span_id
    assert server.parent.span_id == client.context.span_id
    assert server.parent.is_remote
    assert server.attributes["winnow.request_id"] == "rid-unary-1"
    assert inner.parent.span_id == server.context.span_id
    assert server.attributes["rpc.method"] == "Ping"
    assert client.attributes["rpc.grpc.status_code"] == 0


async def test_one_child_per_stage_under_the_search_span(exporter, target):
    """The gateway's shape: embed, concurrent shard searches, rerank, each a child of one search span."""
    ping = target.unary_unary(f"/{SERVICE}/Ping")

    async def stage(name: str) -> bytes:
        with tracing.span(name):
            return await ping(name.encode(), timeout=5)

    with tracing.span("search", mode="precision") as root:
        await stage("embed")
        await asyncio.gather(stage("shard-0"), stage("shard-1"))
        await stage("rerank")
    spans = exporter.get_finished_spans()
    root_id = root.get_span_context().span_id
    children = sorted(s.name for s in spans if s.parent is not None and s.parent.span_id == root_id)
    assert children == ["embed", "rerank", "shard-0", "shard-1"]
    assert len({s.context.trace_id for s in spans}) == 1
    for name in children:
        (stage_span,) = _by_name(spans, name)
        rpc = [s for s in spans if s.parent is not None and s.parent.span_id == stage_span.context.span_id]
        assert [s.kind for s in rpc] == [SpanKind.CLIENT]


async def test_error_status_recorded_on_both_sides(exporter, target):
    ping = target.unary_unary(f"/{SERVICE}/Ping")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ping(b"bad", timeout=5)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    spans = _by_name(exporter.get_finished_spans(), f"{SERVICE}/Ping")
    client = next(s for s in spans if s.kind is SpanKind.CLIENT)
    server = next(s for s in spans if s.kind is SpanKind.SERVER)
    assert client.status.status_code is StatusCode.ERROR
    assert client.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    # the caller's mistake is an error for the client span, not for the server's (OpenTelemetry gRPC conventions)
    assert server.status.status_code is StatusCode.UNSET
    assert server.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert server.attributes["error.type"] == "InvalidArgument"


async def test_server_fault_marks_the_server_span(exporter, target):
    ping = target.unary_unary(f"/{SERVICE}/Ping")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ping(b"boom", timeout=5)
    assert err.value.code() is grpc.StatusCode.INTERNAL
    server = next(s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER)
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes["error.type"] == "RuntimeError"


async def test_streaming_call_span_ends_with_the_stream(exporter, target):
    pages = target.unary_stream(f"/{SERVICE}/Pages")
    token = request_id_var.set("rid-stream-1")
    try:
        with tracing.span("bulk"):
            got = [item async for item in pages(b"p", timeout=5)]
    finally:
        request_id_var.reset(token)
    assert got == [b"p\x00", b"p\x01", b"p\x02"]
    for _ in range(100):  # the client span ends in a task once the status arrives; no sleeping on time
        if any(s.kind is SpanKind.CLIENT for s in exporter.get_finished_spans()):
            break
        await asyncio.sleep(0)
    spans = _by_name(exporter.get_finished_spans(), f"{SERVICE}/Pages")
    assert {s.kind for s in spans} == {SpanKind.CLIENT, SpanKind.SERVER}
    client = next(s for s in spans if s.kind is SpanKind.CLIENT)
    server = next(s for s in spans if s.kind is SpanKind.SERVER)
    assert server.parent.span_id == client.context.span_id
    assert server.attributes["winnow.request_id"] == "rid-stream-1"  # the request id travels on streams too


async def test_health_checks_are_not_traced(exporter, target):
    exporter.clear()
    await health_pb2_grpc.HealthStub(target).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER] == []


async def test_health_probes_of_backends_open_no_root_spans(exporter, target):
    """The watcher's probe calls a backend (as the gateway's probe does): no CLIENT root span, no SERVER span."""
    ping = target.unary_unary(f"/{SERVICE}/Ping")
    probed = asyncio.Event()

    async def probe() -> bool:
        await ping(b"probe", timeout=5)
        probed.set()
        return True

    prober = GrpcService("prober", ServiceSettings(host="127.0.0.1", port=0, health_interval_s=0.05),
                         lambda server: [], probe=probe)
    await prober.start()
    exporter.clear()
    await prober.mark_ready()
    await asyncio.wait_for(probed.wait(), timeout=5)
    await prober.drain(0)
    assert [s.name for s in exporter.get_finished_spans()] == []
    await ping(b"real", timeout=5)  # outside a probe, calls are traced as before
    assert {s.kind for s in exporter.get_finished_spans()} >= {SpanKind.CLIENT, SpanKind.SERVER}


def test_off_by_default_is_a_cheap_noop():
    tracing.configure("none")
    assert not tracing.enabled()
    assert tracing.server_interceptors() == [] and tracing.client_interceptors() == []
    with tracing.span("anything", k=1) as s:
        s.set_attribute("safe", True)
        assert not s.is_recording()
    assert tracing.current_trace_id() == ""


def test_console_exporter_and_bad_settings():
    assert tracing.configure("console", service="test") is not None
    with tracing.span("x"):
        assert len(tracing.current_trace_id()) == 32
    tracing.shutdown()
    with pytest.raises(ValueError, match="otel_exporter must be one of"):
        tracing.configure("jaeger")
    with pytest.raises(ValueError, match="otlp"):
        tracing.configure("otlp", endpoint="")
    assert not tracing.enabled()


# --- one real search through an in-process gateway (slow: starts the local cluster) -----------------------------

_SERVICES = ("embedder", "reranker", "index", "gateway")
needs_cluster = pytest.mark.skipif(
    find_spec("winnow.cluster.launcher") is None
    or any(find_spec(f"winnow.services.{s}.__main__") is None for s in _SERVICES),
    reason="the local cluster (winnow.cluster and every service's __main__) is not there yet",
)


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    """Embedder, reranker and two shards as processes; the gateway under test runs in this process."""
    from winnow.cluster.launcher import ClusterConfig, LocalCluster

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with LocalCluster(ClusterConfig(data_dir=tmp_path_factory.mktemp("trace"), shards=2, gateway_port=port,
                                    cache="memory")) as cluster:
        yield cluster


@pytest.mark.slow
@needs_cluster
async def test_one_search_gives_one_child_span_per_stage(exporter, backends):
    from winnow.api.gateway.v1 import gateway_pb2, gateway_pb2_grpc
    from winnow.services.gateway.__main__ import build
    from winnow.services.gateway.settings import GatewaySettings

    procs = backends.procs
    settings = GatewaySettings(
        host="127.0.0.1", port=0, embedder=procs["embedder"].address, reranker=procs["reranker"].address,
        shards=[procs["shard-0-r0"].address, procs["shard-1-r0"].address], cache="memory",
        log_url=backends.log_url,
    )
    wiring = await build(settings)
    svc = wiring.service
    await svc.start()
    await wiring.warmup()
    await svc.mark_ready()
    channel = make_channel(f"127.0.0.1:{svc.port}")
    try:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        docs = [gateway_pb2.Document(id=f"t{i}", text=t) for i, t in enumerate(
            ["aspirin and heart attacks", "a baby on the beach", "vitamin d deficiency", "statins and cholesterol"])]
        await stub.Upsert(gateway_pb2.UpsertRequest(documents=docs), timeout=60)
        exporter.clear()
        with tracing.span("client") as client_root:
            reply = await stub.Search(gateway_pb2.SearchRequest(query="heart attack", k=2), timeout=60)
        assert reply.reranked and reply.coverage.shards_answered == 2
    finally:
        await channel.close()
        await svc.drain(0)

    # Only this search's trace: long-lived background streams (the gateway's shard Watch) have their own.
    trace_id = client_root.get_span_context().trace_id
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
    (root,) = [s for s in spans if s.kind is SpanKind.SERVER and s.name == "winnow.gateway.v1.Gateway/Search"]
    assert root.parent.span_id != client_root.get_span_context().span_id  # the client's CLIENT span sits between
    children = sorted(s.name for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id)
    assert children == ["cache", "embed", "rerank", "shard_search", "shard_search"]
    downstream = {s.name for s in spans if s.kind is SpanKind.CLIENT and s.parent.span_id != client_root.get_span_context().span_id}
    assert {"winnow.embedder.v1.Embedder/Embed", "winnow.index.v1.IndexShard/Search",
            "winnow.reranker.v1.Reranker/Rerank"} <= downstream
