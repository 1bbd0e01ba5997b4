"""OpenTelemetry tracing: a span per RPC on both sides of every gRPC hop, W3C `traceparent` in the metadata.

Off by default. Each service's `__main__` calls, before it builds its server or any channel::

    tracing.configure(settings.otel_exporter, settings.otel_endpoint, service="gateway")

`winnow.rpc.server` then installs `winnow.rpc.tracing.server_interceptors()` (a SERVER span per RPC, continuing
the caller's trace) and `winnow.rpc.channels` installs `client_interceptors()` (a CLIENT span per outgoing call,
its context injected into the metadata). Code marks its own stages with `with tracing.span("embed", k=64): ...`,
which costs one attribute lookup when tracing is off. This module has no transport in it, so cores may use it.

Exporters: `none` (default: no provider, no interceptors), `console` (JSON spans on stdout), `otlp` (gRPC OTLP
to `endpoint`; needs the `otlp` extra: `pip install 'winnow[otlp]'`), `memory` (kept in-process for tests; the
exporter is returned by `configure`).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

log = logging.getLogger(__name__)

EXPORTERS = ("none", "console", "otlp", "memory")
_NOOP = contextlib.nullcontext(trace.INVALID_SPAN)


class _State:
    provider: TracerProvider | None = None
    tracer: trace.Tracer | None = None


_state = _State()


def _make_exporter(exporter: str, endpoint: str) -> SpanExporter:
    if exporter == "console":
        return ConsoleSpanExporter()
    if exporter == "memory":
        return InMemorySpanExporter()
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ValueError(
            "otel_exporter=otlp needs the OTLP exporter package: pip install 'winnow[otlp]' "
            "(opentelemetry-exporter-otlp-proto-grpc)"
        ) from exc
    if not endpoint:
        raise ValueError("otel_exporter=otlp needs otel_endpoint, e.g. http://otel-collector:4317")
    return OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))


def configure(exporter: str = "none", endpoint: str = "", service: str = "winnow") -> SpanExporter | None:
    """Turn tracing on (or off with `none`) for this process; returns the span exporter (None when off).

    Call it once at start-up, before creating servers and channels: the interceptors are chosen when those are
    built. Calling it again shuts the previous provider down (flushing its spans) and starts afresh.
    """
    exporter = (exporter or "none").strip().lower()
    if exporter not in EXPORTERS:
        raise ValueError(f"otel_exporter must be one of {', '.join(EXPORTERS)}; got {exporter!r}")
    shutdown()
    if exporter == "none":
        return None
    span_exporter = _make_exporter(exporter, endpoint)
    provider = TracerProvider(resource=Resource.create({"service.name": f"winnow-{service}"}))
    # Tests read spans right after the call returns, so the memory exporter must not batch.
    processor = SimpleSpanProcessor(span_exporter) if exporter == "memory" else BatchSpanProcessor(span_exporter)
    provider.add_span_processor(processor)
    _state.provider = provider
    _state.tracer = provider.get_tracer("winnow")
    log.info("tracing on", extra={"fields": {"otel_exporter": exporter, "otel_endpoint": endpoint}})
    return span_exporter


def shutdown() -> None:
    """Flush and stop the current provider, if any; tracing is off afterwards."""
    provider, _state.provider, _state.tracer = _state.provider, None, None
    if provider is not None:
        provider.shutdown()


def enabled() -> bool:
    """Whether `configure` turned an exporter on."""
    return _state.tracer is not None


def span(name: str, **attrs: Any) -> contextlib.AbstractContextManager[trace.Span]:
    """A child span of the current one for a stage of work (`with tracing.span("rerank", pairs=80):`).

    When tracing is off this is a shared no-op context manager yielding a non-recording span, so
    `s.set_attribute(...)` inside the block is always safe.
    """
    tracer = _state.tracer
    if tracer is None:
        return _NOOP
    return tracer.start_as_current_span(name, attributes=attrs or None)


def tracer() -> trace.Tracer | None:
    """The tracer `configure` set up; None while tracing is off (the gRPC interceptors read it)."""
    return _state.tracer


def current_trace_id() -> str:
    """The current trace id as 32 hex digits, or "" outside any span (for log lines and responses)."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""
