"""The gRPC edge every service shares: one interceptor for the cross-cutting concerns, health, reflection,
metrics and graceful drain.

The interceptor is the one place that (a) parses requests, so malformed bytes (invalid UTF-8 in a string field)
and oversized messages become INVALID_ARGUMENT, (b) applies admission control, (c) sets the request id, (d) maps
domain errors to status codes via `winnow.rpc.status.STATUS_TABLE`, and (e) records per-RPC metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import json
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from winnow.common import metrics
from winnow.common.admission import Admission
from winnow.common.errors import InvalidArgument, Overloaded, Unauthenticated, WinnowError, error_kind
from winnow.common.logs import new_request_id, request_id_var, setup_logging
from winnow.common.settings import ServiceSettings
from winnow.rpc import reflection, tls, tracing
from winnow.rpc.health import LIVENESS, READINESS, Readiness
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


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Parse, admit, tag, map errors and measure every RPC of a service."""

    def __init__(self, service: str, max_inflight: int, max_message_bytes: int, auth_token: str = "",
                 long_lived: frozenset[str] = frozenset(), max_concurrent: int = 0,
                 max_queue_wait_s: float = 1.0, queue_wait_factor: float = 1.0) -> None:
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

    def _gate(self, name: str) -> Admission | None:
        if not self.max_concurrent:
            return None
        gate = self._gates.get(name)
        if gate is None:
            gate = self._gates[name] = Admission(
                self.service, name, self.max_concurrent, max(0, self.max_inflight - self.max_concurrent),
                self.max_queue_wait_s, self.queue_wait_factor)
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
    async def _rpc(self, name: str, context, metered: bool = True):
        """Around one RPC: request id, auth, admission, then status mapping and metrics of whatever happens."""
        rid = _request_id(context)
        token = request_id_var.set(rid)
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        admitted = False
        gate = self._gate(name) if metered else None
        gated = False
        try:
            context.set_trailing_metadata(((REQUEST_ID_KEY, rid),))
            self._authenticate(context)
            if metered:
                self._admit()
                admitted = True
                self.inflight += 1
                metrics.INFLIGHT.labels(self.service, metrics.shard()).inc()
            if gate is not None:
                await gate.acquire(context.time_remaining())
                gated = True
                start_run = time.perf_counter()
            yield
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
            if gated:
                gate.release(time.perf_counter() - start_run, measured=code == grpc.StatusCode.OK)
            if admitted:
                self.inflight -= 1
                metrics.INFLIGHT.labels(self.service, metrics.shard()).dec()
            self._record(name, code, start)
            request_id_var.reset(token)

    def _unary(self, name: str, behavior, deserializer):
        async def wrapper(raw, context):
            async with self._rpc(name, context):
                return await behavior(self._parse(raw, deserializer), context)

        return wrapper

    def _stream(self, name: str, behavior, deserializer, long_lived: bool = False):
        async def wrapper(raw, context):
            async with self._rpc(name, context, metered=not long_lived):
                async for item in behavior(self._parse(raw, deserializer), context):
                    yield item

        return wrapper

    def _record(self, method: str, code: grpc.StatusCode, start: float) -> None:
        metrics.REQUESTS.labels(self.service, metrics.shard(), method, code.name).inc()
        metrics.REQUEST_LATENCY.labels(self.service, metrics.shard(), method).observe(time.perf_counter() - start)


Probe = Callable[[], Awaitable[bool]]
Register = Callable[[grpc.aio.Server], Iterable[str]]


def registrar(add: Callable[[Any, grpc.aio.Server], None], servicer: Any, service: Any) -> Register:
    """A `GrpcService` register callback: `add(servicer, server)` (a generated `add_XServicer_to_server`), and the
    full name of `service` (a generated descriptor) for health and reflection."""

    def register(server: grpc.aio.Server) -> list[str]:
        add(servicer, server)
        return [service.full_name]

    return register


class GrpcService:
    """One service's server: start on a port (0 = free), report health, drain on SIGTERM.

    `register(server)` adds the servicers and returns their full service names (for health and reflection).
    Health: liveness and readiness apart (`winnow.rpc.health`). `probe()`, the readiness check named
    "backend", and any added with `add_readiness_check` are evaluated every `health_interval_s` once the
    service is warm; they must not wait behind the service's own work.
    """

    def __init__(
        self,
        service: str,
        settings: ServiceSettings,
        register: Register,
        probe: Probe | None = None,
        long_lived: Iterable[str] = (),
    ) -> None:
        self.service = service
        self.settings = settings
        self._register = register
        self._long_lived = frozenset(long_lived)
        self.server: grpc.aio.Server | None = None
        self.health = health.aio.HealthServicer()
        self.names: list[str] = []
        self.port = 0
        self.metrics_port = -1
        self.health_port = -1
        self._health_server: grpc.aio.Server | None = None
        self._ready = False
        self.readiness = Readiness(settings.health_failures_to_flip)
        if probe is not None:
            self.readiness.add("backend", probe)
        self._draining = False
        self._watcher: asyncio.Task | None = None
        self._stopped = asyncio.Event()

    async def start(self) -> int:
        """Bind and start serving RPCs; health stays NOT_SERVING until `mark_ready()`."""
        s = self.settings
        hard_limit = 2 * s.max_message_bytes  # the interceptor enforces the real limit with INVALID_ARGUMENT
        self.server = grpc.aio.server(
            interceptors=[
                ServiceInterceptor(self.service, s.max_inflight, s.max_message_bytes, s.auth_token.get_secret_value(),
                                   self._long_lived, s.max_concurrent, s.max_queue_wait_ms / 1000.0,
                                   s.queue_wait_factor),
                *tracing.server_interceptors(),
            ],
            options=[
                ("grpc.max_receive_message_length", hard_limit),
                ("grpc.max_send_message_length", hard_limit),
                ("grpc.so_reuseport", 0),
                # Clients reconnect now and then, so replicas added by an autoscaler get traffic.
                ("grpc.max_connection_age_ms", 300_000),
                ("grpc.max_connection_age_grace_ms", 30_000),
            ],
        )
        self.names = list(self._register(self.server))
        await self.health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        metrics.set_build_info(self.service)
        metrics.init_service(self.service, self._methods())
        reflection.enable([*self.names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name], self.server)
        await self._set_all(health_pb2.HealthCheckResponse.NOT_SERVING)
        creds = tls.server_credentials(s.tls_cert_file, s.tls_key_file, s.tls_client_ca_file)
        address = f"{s.host}:{s.port}"
        self.port = self.server.add_insecure_port(address) if creds is None else self.server.add_secure_port(address, creds)
        if self.port == 0:
            raise OSError(f"{self.service}: could not bind {s.host}:{s.port}")
        await self.server.start()
        if s.health_port >= 0:  # plaintext, health only: for probes that cannot speak TLS (Kubernetes gRPC probes)
            self._health_server = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self._health_server)
            self.health_port = self._health_server.add_insecure_port(f"{s.host}:{s.health_port}")
            await self._health_server.start()
        if s.metrics_port >= 0:
            self.metrics_port = metrics.start_metrics_server(s.metrics_port, s.host)
        log.info(
            "listening",
            extra={"fields": {"grpc_port": self.port, "metrics_port": self.metrics_port, "services": self.names,
                              "tls": "mtls" if s.tls_client_ca_file else ("tls" if creds else "off"),
                              "auth": bool(s.auth_token.get_secret_value()), "health_port": self.health_port}},
        )
        return self.port

    def _methods(self) -> list[str]:
        """The RPC names of the registered services (from the protobuf descriptors), for metric initialisation."""
        from google.protobuf import descriptor_pool

        out = []
        for name in self.names:
            try:
                out += [m.name for m in descriptor_pool.Default().FindServiceByName(name).methods]
            except KeyError:
                pass  # a generic handler without a descriptor (tests)
        return out

    def add_readiness_check(self, name: str, check) -> None:
        """Another readiness condition (e.g. "caught_up": a replica has applied its log); see core.health."""
        self.readiness.add(name, check)

    async def mark_ready(self) -> None:
        """The backend is warm: report SERVING and start the health watcher."""
        self._ready = True
        await self._set_all(health_pb2.HealthCheckResponse.SERVING)
        if self.readiness and self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name=f"{self.service}-health-watcher")
        if self.settings.ready_file:
            Path(self.settings.ready_file).write_text(
                json.dumps({"port": self.port, "metrics_port": self.metrics_port, "service": self.service,
                            "health_port": self.health_port})
            )
        log.info("serving")

    async def _watch(self) -> None:
        while not self._draining:
            await asyncio.sleep(self.settings.health_interval_s)
            with tracing.untraced():  # a probe is not a request: no root trace per backend every interval
                ready = await self.readiness.evaluate(timeout_s=max(1.0, self.settings.health_interval_s))
            if not self._draining:
                status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
                await self._set_all(status)

    async def _set_all(self, status) -> None:
        """Readiness names only: liveness stays SERVING until the process exits (see core.health)."""
        for name in ("", READINESS, *self.names):
            await self.health.set(name, status)

    async def drain(self, grace: float | None = None) -> None:
        """Graceful stop: NOT_SERVING first (load balancers stop sending), then finish in-flight RPCs."""
        if self._draining:
            await self._stopped.wait()
            return
        self._draining = True
        grace = self.settings.drain_grace_s if grace is None else grace
        log.info("draining", extra={"fields": {"grace_s": grace}})
        await self._set_all(health_pb2.HealthCheckResponse.NOT_SERVING)
        if self._watcher is not None:
            self._watcher.cancel()
        if self.server is not None:
            await self.server.stop(grace)
        if self._health_server is not None:
            await self._health_server.stop(0)
        self._stopped.set()
        log.info("stopped")

    async def wait_for_termination(self) -> None:
        """Run until SIGTERM/SIGINT, then drain."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.drain()))
        await self._stopped.wait()


@dataclass
class Wiring:
    """One service, wired and not started: what a `__main__`'s `build(settings)` returns.

    `core` is the transport-free core (tests and benchmarks drive it directly); `warmup` loads the backend while
    health says NOT_SERVING; `close` releases it after the server has drained.
    """

    service: GrpcService
    core: Any
    warmup: Callable[[], Awaitable[None]] | None = None
    close: Callable[[], Awaitable[None]] | None = None


S = TypeVar("S", bound=ServiceSettings)


async def serve_forever(svc: GrpcService, warmup: Callable[[], Awaitable[None]] | None = None) -> None:
    """Start, warm up the backend (health NOT_SERVING meanwhile), mark ready, then run until a signal."""
    await svc.start()
    if warmup is not None:
        await warmup()
    await svc.mark_ready()
    await svc.wait_for_termination()


async def run_wiring(wiring: Wiring) -> None:
    """Serve a wired service until a signal, then close its core (also on a failed start)."""
    try:
        await serve_forever(wiring.service, wiring.warmup)
    finally:
        if wiring.close is not None:
            await wiring.close()


def run_service(service: str, settings: ServiceSettings, amain: Callable[[ServiceSettings], Awaitable[None]]) -> int:
    """The process prologue every service shares: logs, tracing, the effective config, the loop."""
    setup_logging(service, settings.log_level)
    tracing.configure(settings.otel_exporter, settings.otel_endpoint, service)
    settings.log_effective(service)
    asyncio.run(amain(settings))
    return 0


def serve(service: str, settings_type: type[S], build: Callable[[S], Wiring | Awaitable[Wiring]],
          argv: Sequence[str] | None = None) -> int:
    """The one entry point of every service's `__main__`: settings from flags and env vars -> `build` -> serve.

    `build` may be a coroutine function (the gateway's awaits its cache); it runs inside the event loop, after
    logging and tracing are set up, so channels and servers get their interceptors.
    """
    settings = settings_type.from_args(sys.argv[1:] if argv is None else argv)

    async def amain(s: S) -> None:
        wiring = build(s)
        if inspect.isawaitable(wiring):
            wiring = await wiring
        await run_wiring(wiring)

    return run_service(service, settings, amain)


def wire(service: str, settings: ServiceSettings, core: Any, servicer: Any, add: Callable[[Any, grpc.aio.Server], None],
         descriptor: Any, *, probe: Probe | None = None, warmup: Callable[[], Awaitable[None]] | None = None,
         close: Callable[[], Awaitable[None]] | None = None, long_lived: Iterable[str] = ()) -> Wiring:
    """A service's `Wiring`: `servicer` registered with `add` (a generated `add_XServicer_to_server`) under
    `descriptor`'s name, health probed by `probe`, the core warmed up and closed by `warmup` / `close`."""
    svc = GrpcService(service, settings, registrar(add, servicer, descriptor), probe=probe, long_lived=long_lived)
    return Wiring(svc, core, warmup, close)


def wire_model(service: str, settings: ServiceSettings, core: Any, servicer: Any,
               add: Callable[[Any, grpc.aio.Server], None], descriptor: Any) -> Wiring:
    """`wire` for a model service: the core (a `ModelCore`) brings its own probe, warm-up and close."""
    return wire(service, settings, core, servicer, add, descriptor, probe=core.probe, warmup=core.warmup,
                close=core.close)


def service_main(service: str, settings_type: type[S], build: Callable[[S], Wiring | Awaitable[Wiring]]):
    """The `main(argv=None) -> int` of a service's `__main__` (what `winnow serve <service>` calls)."""

    def main(argv: Sequence[str] | None = None) -> int:
        return serve(service, settings_type, build, argv)

    main.__doc__ = f"Run the {service} service until SIGTERM; flags and env vars as `--help` lists them."
    return main
