"""The gRPC edge every service shares: a server with the one interceptor (`winnow.rpc.interceptor`: parsing,
auth, admission, request ids, error mapping, per-RPC metrics), health, reflection, metrics and graceful drain."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from winnow.common import metrics
from winnow.common.logs import setup_logging
from winnow.common.settings import ServiceSettings
from winnow.rpc import reflection, tls, tracing
from winnow.rpc.health import LIVENESS, READINESS, Readiness

from winnow.rpc.interceptor import Classifier, ServiceInterceptor

log = logging.getLogger(__name__)

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
        classify: Classifier | None = None,
    ) -> None:
        self.service = service
        self.classify = classify
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
                                   s.queue_wait_factor, self.classify),
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
         close: Callable[[], Awaitable[None]] | None = None, long_lived: Iterable[str] = (),
         classify: Classifier | None = None) -> Wiring:
    """A service's `Wiring`: `servicer` registered with `add` (a generated `add_XServicer_to_server`) under
    `descriptor`'s name, health probed by `probe`, the core warmed up and closed by `warmup` / `close`,
    requests sorted into admission gates by `classify` (default: one gate per method)."""
    svc = GrpcService(service, settings, registrar(add, servicer, descriptor), probe=probe, long_lived=long_lived,
                      classify=classify)
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
