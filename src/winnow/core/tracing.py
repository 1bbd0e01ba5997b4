"""OpenTelemetry tracing hooks (filled in by the observability work; off by default)."""

from __future__ import annotations


def server_interceptors() -> list:
    """Server interceptors that open a span per RPC; empty while tracing is off."""
    return []


def client_interceptors() -> list:
    """Client interceptors that propagate the trace context in gRPC metadata; empty while tracing is off."""
    return []
