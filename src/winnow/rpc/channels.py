"""Outgoing gRPC: channels with sane options, request-id propagation; the incoming call's deadline as a `Deadline`."""

from __future__ import annotations

import json

import grpc

from winnow.common.deadline import Deadline
from winnow.common.logs import request_id_var
from winnow.rpc import tracing
from winnow.rpc.interceptor import REQUEST_ID_KEY
from winnow.rpc.tls import PLAINTEXT, ChannelSecurity

# Retries only on UNAVAILABLE (the request never reached a handler or the peer restarted), as grpc's
# examples/python/retry recommends; every other code is returned to the caller.
# round_robin: a target that resolves to several pods (a Kubernetes headless Service) spreads calls over all of
# them; pick_first, the default, would send everything to one pod and make replicas (and their HPA) pointless.
_SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


class _RequestIdInterceptor(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """Send the current request id downstream so every service logs the same id for one search."""

    def _details(self, details):
        rid = request_id_var.get()
        if rid == "-":
            return details
        metadata = list(details.metadata or ())
        if not any(k == REQUEST_ID_KEY for k, _ in metadata):
            metadata.append((REQUEST_ID_KEY, rid))
        return details._replace(metadata=metadata)

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(self._details(client_call_details), request)

    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await continuation(self._details(client_call_details), request)


class _RequestIdStreamInterceptor(grpc.aio.UnaryStreamClientInterceptor):
    """grpc.aio files an interceptor under the first kind it matches, so streaming calls need their own class."""

    _details = _RequestIdInterceptor._details
    intercept_unary_stream = _RequestIdInterceptor.intercept_unary_stream


class _BearerInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Send this service's own credential (`authorization: Bearer <token>`) on every call."""

    def __init__(self, token: str) -> None:
        self._pair = ("authorization", f"Bearer {token}")

    def _details(self, details):
        return details._replace(metadata=[*(details.metadata or ()), self._pair])

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(self._details(client_call_details), request)


class _BearerStreamInterceptor(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._pair = ("authorization", f"Bearer {token}")

    _details = _BearerInterceptor._details

    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await continuation(self._details(client_call_details), request)


def make_channel(target: str, max_message_bytes: int = 64 * 1024 * 1024, retries: bool = True,
                 reconnect_max_ms: int = 0, security: ChannelSecurity = PLAINTEXT) -> grpc.aio.Channel:
    """A grpc.aio channel to `target` (host:port): TLS/mTLS and a bearer token as `security` says.

    `reconnect_max_ms` > 0 caps the reconnect backoff (grpc's default grows to 120 s): a replica that comes back
    on its old address is then found within that long.
    """
    backoff = [("grpc.initial_reconnect_backoff_ms", min(100, reconnect_max_ms)),
               ("grpc.min_reconnect_backoff_ms", min(100, reconnect_max_ms)),
               ("grpc.max_reconnect_backoff_ms", reconnect_max_ms)] if reconnect_max_ms > 0 else []
    options = [*backoff,
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.enable_retries", 1 if retries else 0),
        ("grpc.service_config", _SERVICE_CONFIG),
        *security.options(),
    ]
    interceptors = [_RequestIdInterceptor(), _RequestIdStreamInterceptor(), *tracing.client_interceptors()]
    if security.token:
        interceptors += [_BearerInterceptor(security.token), _BearerStreamInterceptor(security.token)]
    if security.tls:
        return grpc.aio.secure_channel(target, security.credentials(), options=options, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)


def deadline_from_context(context: grpc.aio.ServicerContext | None, default_s: float) -> Deadline:
    """The incoming call's deadline: the caller's own wins; `default_s` applies only to callers that set none."""
    remaining = context.time_remaining() if context is not None else None
    return Deadline(default_s if remaining is None else remaining)
