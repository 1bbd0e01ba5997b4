"""gRPC glue for tracing: a SERVER span per RPC and a CLIENT span per outgoing call, W3C `traceparent` in the
metadata. The tracer itself (configure, span) is `winnow.common.tracing`, which has no transport in it."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from winnow.common.logs import request_id_var
from winnow.common.tracing import configure, current_trace_id, enabled, shutdown, span, tracer
from winnow.rpc.status import status_for

__all__ = ["configure", "current_trace_id", "enabled", "shutdown", "span", "server_interceptors",
           "client_interceptors", "untraced"]

# Health probes (kubelet, compose, load balancers) would drown real traces; reflection is tooling.
_UNTRACED_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
_PROPAGATOR = TraceContextTextMapPropagator()
# Client spans of streaming calls end when the stream does; the finishing tasks are held here until then.
_pending: set[asyncio.Task] = set()


# OpenTelemetry's gRPC conventions: a server span is an error only for codes that are the server's fault; a
# client span is an error for any code but OK.
_SERVER_FAULTS = frozenset({
    grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
})


def _set_code(span_: trace.Span, code: grpc.StatusCode | None, server: bool = False) -> None:
    if code is None:
        return
    span_.set_attribute("rpc.grpc.status_code", code.value[0])
    if code is not grpc.StatusCode.OK and (not server or code in _SERVER_FAULTS):
        span_.set_status(Status(StatusCode.ERROR, code.name))


def _rpc_attrs(method: str) -> dict[str, str]:
    service, _, name = method.lstrip("/").rpartition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


class _ServerInterceptor(grpc.aio.ServerInterceptor):
    """Open a SERVER span per RPC, continuing the trace found in the caller's `traceparent` metadata."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[override]
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(_UNTRACED_PREFIXES):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # no client-streaming RPCs in Winnow's contracts

    def _start(self, method: str, context) -> contextlib.AbstractContextManager[trace.Span]:
        carrier = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        parent = _PROPAGATOR.extract(carrier)
        attrs = _rpc_attrs(method)
        attrs["winnow.request_id"] = request_id_var.get()
        return self.tracer.start_as_current_span(
            method.lstrip("/"), context=parent, kind=SpanKind.SERVER, attributes=attrs,
            record_exception=False, set_status_on_exception=False,
        )

    def _unary(self, method: str, behavior):
        async def wrapper(request, context):
            with self._start(method, context) as s:
                try:
                    response = await behavior(request, context)
                except BaseException as exc:
                    _server_failure(s, context, exc)
                    raise
                _set_code(s, context.code() or grpc.StatusCode.OK, server=True)
                return response

        return wrapper

    def _stream(self, method: str, behavior):
        async def wrapper(request, context):
            with self._start(method, context) as s:
                try:
                    async for item in behavior(request, context):
                        yield item
                except BaseException as exc:
                    _server_failure(s, context, exc)
                    raise
                _set_code(s, context.code() or grpc.StatusCode.OK, server=True)

        return wrapper


def _server_failure(span_: trace.Span, context, exc: BaseException) -> None:
    if isinstance(exc, asyncio.CancelledError):
        _set_code(span_, grpc.StatusCode.CANCELLED, server=True)
    elif isinstance(exc, grpc.aio.AbortError):
        _set_code(span_, context.code() or grpc.StatusCode.UNKNOWN, server=True)
    else:
        # The core interceptor outside this one turns the error into this status; the span keeps the error type,
        # never the message (it may hold user text).
        span_.set_attribute("error.type", type(exc).__name__)
        _set_code(span_, status_for(exc), server=True)


def _method_name(details) -> str:
    method = details.method
    return method.decode() if isinstance(method, bytes) else str(method)


_SUPPRESSED: contextvars.ContextVar[bool] = contextvars.ContextVar("winnow_tracing_suppressed", default=False)


@contextlib.contextmanager
def untraced():
    """Outgoing calls made inside (and in tasks started inside) open no spans: for health probes, which would
    otherwise start a root trace per backend every few seconds."""
    token = _SUPPRESSED.set(True)
    try:
        yield
    finally:
        _SUPPRESSED.reset(token)


def _untraced(details) -> bool:
    return _method_name(details).startswith(_UNTRACED_PREFIXES)


def _unsampled(details):
    """The call's details with a not-sampled `traceparent`, so the callee does not start a root trace either."""
    import random

    ctx = trace.SpanContext(trace_id=random.getrandbits(128) or 1, span_id=random.getrandbits(64) or 1,
                            is_remote=False, trace_flags=trace.TraceFlags(0))
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(trace.NonRecordingSpan(ctx)))
    metadata = [(k, v) for k, v in (details.metadata or ()) if k not in carrier]
    metadata.extend(carrier.items())
    return details._replace(metadata=metadata)


class _ClientSpans:
    """Open a CLIENT span per outgoing call and put its context in the metadata as `traceparent`."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def _begin(self, details) -> tuple[trace.Span, Any]:
        method = _method_name(details)
        s = self.tracer.start_span(method.lstrip("/"), kind=SpanKind.CLIENT, attributes=_rpc_attrs(method))
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(s))
        metadata = [(k, v) for k, v in (details.metadata or ()) if k not in carrier]
        metadata.extend(carrier.items())
        return s, details._replace(metadata=metadata)

    async def _start(self, continuation, client_call_details, request) -> tuple[trace.Span | None, Any]:
        """Start the call inside a new CLIENT span: (span, call), or (None, call) for an untraced method. A call
        that fails to start ends its span here."""
        if _untraced(client_call_details):
            return None, await continuation(client_call_details, request)
        if _SUPPRESSED.get():
            return None, await continuation(_unsampled(client_call_details), request)
        s, details = self._begin(client_call_details)
        try:
            return s, await continuation(details, request)
        except BaseException as exc:
            _client_failure(s, exc)
            s.end()
            raise


class _UnaryClientInterceptor(_ClientSpans, grpc.aio.UnaryUnaryClientInterceptor):
    """Unary calls: the span covers the call until its status arrives."""

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        s, call = await self._start(continuation, client_call_details, request)
        if s is None:
            return call
        try:
            _set_code(s, await call.code())
        except BaseException as exc:
            _client_failure(s, exc)
            raise
        finally:
            s.end()
        return call


# grpc.aio files an interceptor under the first interceptor kind it is an instance of, so one class cannot
# serve both unary and streaming calls: each kind gets its own.
class _StreamClientInterceptor(_ClientSpans, grpc.aio.UnaryStreamClientInterceptor):
    """Server-streaming calls: the span ends when the stream's status arrives, not when the call is returned."""

    async def intercept_unary_stream(self, continuation, client_call_details, request):
        s, call = await self._start(continuation, client_call_details, request)
        if s is None:
            return call
        # The caller consumes the stream; the span ends when the stream's status arrives.
        task = asyncio.get_running_loop().create_task(_finish_stream(call, s))
        _pending.add(task)
        task.add_done_callback(_pending.discard)
        return call


async def _finish_stream(call, s: trace.Span) -> None:
    try:
        _set_code(s, await call.code())
    except BaseException as exc:  # noqa: BLE001 - the span must end whatever happened
        _client_failure(s, exc)
    finally:
        s.end()


def _client_failure(span_: trace.Span, exc: BaseException) -> None:
    if isinstance(exc, grpc.aio.AioRpcError):
        _set_code(span_, exc.code())
    elif isinstance(exc, asyncio.CancelledError):
        _set_code(span_, grpc.StatusCode.CANCELLED)
    else:
        span_.set_status(Status(StatusCode.ERROR, type(exc).__name__))


def server_interceptors() -> list:
    """Server interceptors that open a span per RPC; empty while tracing is off."""
    t = tracer()
    return [] if t is None else [_ServerInterceptor(t)]


def client_interceptors() -> list:
    """Client interceptors that propagate the trace context in gRPC metadata; empty while tracing is off."""
    t = tracer()
    return [] if t is None else [_UnaryClientInterceptor(t), _StreamClientInterceptor(t)]
