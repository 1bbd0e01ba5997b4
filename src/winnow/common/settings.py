"""The base of every service's typed settings: one field = one env var = one CLI flag, each documented.

A service subclasses `ServiceSettings` with its own env prefix (`WINNOW_EMBEDDER_`, ...). Values come from, in
order of precedence: CLI flags (`--port 50051`), env vars (`WINNOW_EMBEDDER_PORT=50051`), the field default.
No other module reads `os.environ`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Self, Sequence

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from winnow.common.batcher import BatchLimits

log = logging.getLogger(__name__)

#: Tokens that ship in examples and must never protect a real deployment: services refuse to start with them.
PLACEHOLDER_TOKENS = frozenset({"change-me", "changeme", "change_me", "placeholder", "replace-me", "secret", "token",
                                "password", "todo", "xxx"})


def check_token(token: str, what: str) -> str:
    """Refuse a token from the examples: a placeholder protects nothing."""
    if token and token.strip().lower() in PLACEHOLDER_TOKENS:
        raise ValueError(f"{what} is the placeholder {token!r}: set a real secret (e.g. `openssl rand -hex 32`)")
    return token


def comma_list(value: Any, item: Callable[[str], Any] = str) -> Any:
    """A list field's value from an env var or flag: "a,b" or a JSON list; other values pass through.

    Used as a `field_validator(..., mode="before")` body for list fields declared with `NoDecode`; blanks
    between commas are dropped, and a bare int becomes a one-item list.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):
            return json.loads(value)
        return [item(v.strip()) for v in value.split(",") if v.strip()]
    return value


class ServiceSettings(BaseSettings):
    """Settings every gRPC service has."""

    model_config = SettingsConfigDict(
        env_prefix="WINNOW_",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_exit_on_error=True,
        extra="ignore",
        validate_default=True,
    )

    host: str = Field("127.0.0.1", description="Address the gRPC server binds (0.0.0.0 in containers).")
    port: int = Field(0, ge=0, le=65535, description="gRPC port; 0 picks a free port (printed at start-up).")
    metrics_port: int = Field(
        -1, ge=-1, le=65535, description="Prometheus /metrics HTTP port; 0 picks a free port, -1 disables it."
    )
    log_level: str = Field("INFO", description="Python log level: DEBUG, INFO, WARNING, ERROR.")
    max_inflight: int = Field(
        256, ge=1, description="Admission control: concurrent RPCs past this fail fast with RESOURCE_EXHAUSTED."
    )
    max_concurrent: int = Field(
        0, ge=0, description="Admission: RPCs of one method running at once; the rest wait (within "
        "max_queue_wait_ms, queue_wait_factor and their deadline) or are refused at once with RESOURCE_EXHAUSTED "
        "and a retry-after-ms hint. 0 = no gate (only max_inflight). See docs/hardening.md.",
    )
    max_queue_wait_ms: float = Field(
        50.0, ge=0, description="Admission: the longest an RPC may wait for a slot (with max_concurrent > 0); "
        "past it, RESOURCE_EXHAUSTED. Small, so a refusal comes back fast and an admitted request is not slowed "
        "by queueing (docs/hardening.md).",
    )
    queue_wait_factor: float = Field(
        1.0, ge=0, description="Admission: an RPC may wait at most this many times the method's recent service "
        "time, so admitted latency stays within ~(1 + factor) x the service time on any machine.",
    )
    max_message_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="Largest gRPC message accepted or sent, in bytes."
    )
    drain_grace_s: float = Field(
        5.0, ge=0, description="On SIGTERM: seconds health reports NOT_SERVING and in-flight RPCs finish."
    )
    health_interval_s: float = Field(
        5.0, gt=0, description="How often the health watcher probes the backend (model or index)."
    )
    health_failures_to_flip: int = Field(
        2, ge=1, description="Readiness turns NOT_SERVING after this many failing health rounds in a row."
    )
    otel_exporter: str = Field(
        "none", description="OpenTelemetry span exporter: none, console or otlp (OTLP needs the exporter package)."
    )
    otel_endpoint: str = Field("", description="OTLP endpoint for otel_exporter=otlp, e.g. http://collector:4317.")
    auth_token: SecretStr = Field(
        SecretStr(""),
        description="If set, every RPC but health and reflection must carry `authorization: Bearer <token>` "
        "metadata; others get UNAUTHENTICATED. Meant for the public gateway.",
    )
    auth_token_file: str = Field(
        "", description="File holding auth_token (e.g. a mounted Kubernetes Secret); wins over auth_token. "
        "Secrets come from env vars or files, never from command-line flags (they show in `ps`).",
    )
    tls_cert_file: str = Field("", description="PEM server certificate (chain); with tls_key_file turns TLS on.")
    tls_key_file: str = Field("", description="PEM private key of tls_cert_file.")
    tls_client_ca_file: str = Field(
        "", description="PEM CA bundle: when set, clients must present a certificate it signed (mTLS)."
    )
    health_port: int = Field(
        -1, ge=-1, le=65535, description="A plaintext port serving only grpc.health.v1 (Kubernetes gRPC probes "
        "cannot speak TLS); -1 = none (health on the main port only), 0 = a free port.",
    )
    ready_file: str = Field(
        "", description="If set, the service writes its bound gRPC/metrics ports here as JSON once SERVING."
    )

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        """auth_token from its file; a placeholder token refuses to start (PLACEHOLDER_TOKENS)."""
        if self.auth_token_file:
            self.auth_token = SecretStr(Path(self.auth_token_file).read_text().strip())
        check_token(self.auth_token.get_secret_value(), "auth_token")
        return self

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, **overrides: Any) -> Self:
        """Build from env vars and CLI flags (`argv`, without the program name). `overrides` win over both."""
        if argv is None:
            return cls(**overrides)
        return cls(_cli_parse_args=list(argv), **overrides)

    def redacted(self) -> dict[str, Any]:
        """The effective config with secrets masked, for the start-up log line."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            out[name] = "***" if isinstance(value, SecretStr) else value
        return out

    def log_effective(self, service: str) -> None:
        log.info("effective config", extra={"fields": {"service": service, "config": json.loads(json.dumps(self.redacted(), default=str))}})


class ModelServiceSettings(ServiceSettings):
    """Settings the two model services (embedder, reranker) share: where the model runs and the micro-batcher's
    budgets. A service overrides a default by redeclaring the field."""

    device: str = Field("auto", pattern="^(auto|cpu|cuda)$",
                        description="auto: CUDA fp16 if a GPU is visible, else CPU fp32; cpu or cuda force it.")
    threads: int = Field(
        0, ge=0, description="Torch CPU threads for inference; 0 = the CPUs this process may use (its affinity "
        "mask, capped by a container's cgroup CPU quota), not the node's core count.")
    max_batch_size: int = Field(64, ge=1, description="Micro-batcher: most inputs in one forward pass.")
    max_wait_ms: float = Field(2.0, ge=0, description="Micro-batcher: longest an input waits for companions (ms).")
    max_batch_tokens: int = Field(
        16384, ge=1, description="Micro-batcher: token budget per forward pass (longest input x inputs)."
    )
    max_queue: int = Field(8192, ge=1, description="Micro-batcher: inputs waiting past this are RESOURCE_EXHAUSTED.")
    sub_batch_tokens: int = Field(
        2048, ge=0, description="Micro-batcher: a closed batch runs in slices of at most this many padded tokens; "
        "between slices, inputs whose caller left (cancelled, deadline passed) are dropped, so abandoned work "
        "stops within one slice (about a tenth of a full reranker window on CPU). 0 = one slice (best on a GPU).",
    )
    stall_s: float = Field(
        60.0, gt=0, description="Readiness: NOT_SERVING when the model has had work but finished nothing for this "
        "long (a hung forward pass). A busy model that makes progress stays SERVING.",
    )

    def batcher_limits(self) -> BatchLimits:
        """The micro-batcher's budgets (and the readiness stall limit) as the plain value a model core takes."""
        return BatchLimits(self.max_batch_size, self.max_wait_ms, self.max_batch_tokens, self.max_queue,
                           self.sub_batch_tokens, self.stall_s)
