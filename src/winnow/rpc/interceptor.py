"""The interceptor every service's gRPC server runs: the one place that (a) parses requests, so malformed bytes
(invalid UTF-8 in a string field) and oversized messages become INVALID_ARGUMENT, (b) authenticates and applies
admission control, (c) sets the request id, (d) maps domain errors to status codes via
`winnow.rpc.status.STATUS_TABLE` (with google.rpc.Status details), and (e) records per-RPC metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from winnow.common import metrics
from winnow.common.admission import Admission
from winnow.common.errors import InvalidArgument, Overloaded, Unauthenticated, WinnowError, error_kind
from winnow.common.logs import new_request_id, request_id_var
from winnow.rpc.status import STATUS_DETAILS_KEY, rpc_status, status_for

log = logging.getLogger(__name__)

_EXEMPT_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
REQUEST_ID_KEY = "x-request-id"
RETRY_AFTER_KEY = "retry-after-ms"  # trailing metadata on RESOURCE_EXHAUSTED: when a retry may succeed


def _request_id(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and value:
            return str(value)[:64]
    return new_request_id()


#: A service's cost classes: (method, parsed request) -> (gate name, its max_concurrent), or None for the method's
#: own gate. Requests of very different cost (a reranked search and a first-stage one) then queue apart, each
#: gate learning its own service time.
Classifier = Callable[[str, Any], "tuple[str, int] | None"]


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Parse, admit, tag, map errors and measure every RPC of a service."""

    def __init__(self, service: str, max_inflight: int, max_message_bytes: int, auth_token: str = "",
                 long_lived: frozenset[str] = frozenset(), max_concurrent: int = 0,
                 max_queue_wait_s: float = 1.0, queue_wait_factor: float = 1.0,
                 classify: Classifier | None = None) -> None:
        self.service = service
        # Streams that stay open by design (IndexShard.Watch): not admitted against max_inflight nor counted
        # in the in-flight gauge, which would otherwise read as load.
        self.long_lived = long_lived
        self._auth = f"Bearer {auth_token}".encode() if auth_token else b""
        self.max_inflight = max_inflight
        self.max_message_bytes = max_message_bytes
        self.inflight = 0
        # Per-method gates (core.admission): at most max_concurrent run, the rest wait within a time budget.
        self.max_concurrent = max_concurrent
        self.max_queue_wait_s = max_queue_wait_s
        self.queue_wait_factor = queue_wait_factor
        self._gates: dict[str, Admission] = {}
        self.classify = classify
        # The wrapped handler of each method, built once (the server hands the same handler for a method every
        # call): wrapping per call cost a closure and a handler object on every request's path.
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[override]
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(_EXEMPT_PREFIXES):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method.rsplit("/", 1)[-1], handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, name: str, handler):
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(name, handler.unary_unary, handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(name, handler.unary_stream, handler.request_deserializer, name in self.long_lived),
                response_serializer=handler.response_serializer,
            )
        return handler  # no client-streaming RPCs in Winnow's contracts

    def _parse(self, raw: bytes, deserializer):
        if len(raw) > self.max_message_bytes:
            raise InvalidArgument(
                f"request is {len(raw)} bytes; the limit is {self.max_message_bytes} (max_message_bytes): "
                "split it into smaller requests", reason="REQUEST_TOO_LARGE",
                info={"limit": self.max_message_bytes, "size": len(raw)},
            )
        try:
            return deserializer(raw) if deserializer else raw
        except DecodeError as exc:
            raise InvalidArgument(
                f"request could not be parsed ({exc}); string fields must be valid UTF-8", reason="MALFORMED_REQUEST"
            ) from None

    def _authenticate(self, context) -> None:
        if not self._auth:
            return
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and hmac.compare_digest(str(value).encode(), self._auth):
                return
        raise Unauthenticated("missing or wrong `authorization: Bearer <token>` metadata", reason="BAD_TOKEN")

    def _admit(self) -> None:
        if self.inflight >= self.max_inflight:
            metrics.ADMISSION_REJECTED.labels(self.service, metrics.shard()).inc()
            raise Overloaded(
                f"{self.service} is at its limit of {self.max_inflight} concurrent requests; retry with backoff",
                reason="OVERLOADED", info={"limit": self.max_inflight},
            )

    def _gate(self, name: str, request: Any) -> Admission | None:
        """The gate of this request: its cost class's when the service classifies it, else its method's."""
        if not self.max_concurrent:
            return None
        cls = self.classify(name, request) if self.classify is not None else None
        key, cap = cls if cls is not None else (name, self.max_concurrent)
        if cap <= 0:
            return None
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = Admission(
                self.service, key, cap, max(0, self.max_inflight - cap), self.max_queue_wait_s,
                self.queue_wait_factor)
        return gate

    async def _fail(self, context, exc: BaseException, rid: str) -> grpc.StatusCode:
        code = status_for(exc)
        retry = getattr(exc, "retry_after_s", None)
        trailer = [(REQUEST_ID_KEY, rid)]
        if retry is not None:
            trailer.append((RETRY_AFTER_KEY, str(int(retry * 1000))))
        metrics.FAILURES.labels(self.service, metrics.shard(), error_kind(exc)).inc()
        if isinstance(exc, WinnowError):
            message = str(exc)
            # A refusal under overload is counted (metrics), not logged one by one: a log line per shed request
            # would spend the CPU that shedding is meant to save.
            level = logging.DEBUG if isinstance(exc, Overloaded) else logging.INFO
            log.log(level, "request failed",
                    extra={"fields": {"code": code.name, "reason": exc.reason, "error": message}})
        else:
            log.exception("unhandled error")
            message = f"internal error; request id {rid}"
        # google.rpc.Status details (ErrorInfo, BadRequest, RetryInfo): built in rpc.status, the one mapping place.
        trailer.append((STATUS_DETAILS_KEY, rpc_status(exc, message, rid, self.service).SerializeToString()))
        await context.abort(code, message, trailing_metadata=tuple(trailer))
        return code  # unreachable: abort raises

    @contextlib.asynccontextmanager
    async def _rpc(self, name: str, context, raw: bytes, deserializer, metered: bool = True):
        """Around one RPC: request id, auth, parse, admission, then status mapping and metrics of whatever
        happens. Yields the parsed request."""
        rid = _request_id(context)
        token = request_id_var.set(rid)
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        admitted = False
        gate = None
        try:
            context.set_trailing_metadata(((REQUEST_ID_KEY, rid),))
            self._authenticate(context)
            if metered:
                self._admit()
                admitted = True
                self.inflight += 1
                metrics.INFLIGHT.labels(self.service, metrics.shard()).inc()
            request = self._parse(raw, deserializer)
            if metered and (candidate := self._gate(name, request)) is not None:
                await candidate.acquire(context.time_remaining())
                gate = candidate
                start_run = time.perf_counter()
            yield request
        except grpc.aio.AbortError:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:  # noqa: BLE001 - the one catch-all, mapped to a status
            code = status_for(exc)
            await self._fail(context, exc, rid)
        finally:
            if gate is not None:
                gate.release(time.perf_counter() - start_run, measured=code == grpc.StatusCode.OK)
            if admitted:
                self.inflight -= 1
                metrics.INFLIGHT.labels(self.service, metrics.shard()).dec()
            self._record(name, code, start)
            request_id_var.reset(token)

    def _unary(self, name: str, behavior, deserializer):
        async def wrapper(raw, context):
            async with self._rpc(name, context, raw, deserializer) as request:
                return await behavior(request, context)

        return wrapper

    def _stream(self, name: str, behavior, deserializer, long_lived: bool = False):
        async def wrapper(raw, context):
            async with self._rpc(name, context, raw, deserializer, metered=not long_lived) as request:
                async for item in behavior(request, context):
                    yield item

        return wrapper

    def _record(self, method: str, code: grpc.StatusCode, start: float) -> None:
        metrics.REQUESTS.labels(self.service, metrics.shard(), method, code.name).inc()
        metrics.REQUEST_LATENCY.labels(self.service, metrics.shard(), method).observe(time.perf_counter() - start)
