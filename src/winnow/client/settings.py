"""Where the client connects and how: one typed settings object, read from WINNOW_* environment variables.

Explicit arguments to `WinnowClient(...)` / `AsyncWinnowClient(...)` win over the environment; the environment
wins over the defaults. The token never needs to be on a command line (`WINNOW_TOKEN`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TARGET = "127.0.0.1:50050"


class ClientSettings(BaseSettings):
    """Connection settings of a Winnow client (env var = WINNOW_ + the field name in capitals)."""

    model_config = SettingsConfigDict(env_prefix="WINNOW_", extra="ignore")

    target: str = Field("", description="Gateway address, host:port (WINNOW_TARGET). Empty = 127.0.0.1:50050.")
    token: SecretStr = Field(SecretStr(""), description="Bearer token sent as `authorization` (WINNOW_TOKEN).")
    tls: bool = Field(False, description="Use TLS with the system's root certificates (WINNOW_TLS=1).")
    tls_ca: str = Field("", description="PEM file of the CA that signed the gateway's certificate; implies TLS.")
    tls_cert: str = Field("", description="PEM client certificate for mutual TLS (with tls_key).")
    tls_key: str = Field("", description="PEM private key of tls_cert.")
    tls_server_name: str = Field(
        "", description="Expected name in the gateway's certificate when it differs from the target's host."
    )

    @property
    def use_tls(self) -> bool:
        """TLS when asked for, or implied by a CA or client certificate."""
        return bool(self.tls or self.tls_ca or self.tls_cert)

    def resolved_target(self) -> str:
        return self.target or DEFAULT_TARGET


def resolve(target: str | None = None, token: str | None = None, *, tls: bool | None = None,
            tls_ca: str | None = None, tls_cert: str | None = None, tls_key: str | None = None,
            tls_server_name: str | None = None) -> ClientSettings:
    """The environment, overridden by every argument that is not None."""
    overrides: dict[str, Any] = {k: v for k, v in dict(
        target=target, token=SecretStr(token) if token is not None else None, tls=tls, tls_ca=tls_ca,
        tls_cert=tls_cert, tls_key=tls_key, tls_server_name=tls_server_name).items() if v is not None}
    return ClientSettings(**overrides)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {path!r}: {exc.strerror or exc}") from None


def channel_credentials(s: ClientSettings) -> grpc.ChannelCredentials | None:
    """TLS credentials for the settings, or None for a plaintext channel. Unreadable files raise ValueError."""
    if not s.use_tls:
        return None
    if bool(s.tls_cert) != bool(s.tls_key):
        raise ValueError("mutual TLS needs both tls_cert and tls_key (WINNOW_TLS_CERT, WINNOW_TLS_KEY)")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(s.tls_ca, "CA file") if s.tls_ca else None,
        private_key=_read(s.tls_key, "client key") if s.tls_key else None,
        certificate_chain=_read(s.tls_cert, "client certificate") if s.tls_cert else None,
    )


def channel_options(s: ClientSettings, max_message_bytes: int) -> list[tuple[str, Any]]:
    opts: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.primary_user_agent", "winnow-python-client"),
    ]
    if s.use_tls and s.tls_server_name:
        opts.append(("grpc.ssl_target_name_override", s.tls_server_name))
    return opts


def call_metadata(s: ClientSettings) -> tuple[tuple[str, str], ...]:
    token = s.token.get_secret_value()
    return (("authorization", f"Bearer {token}"),) if token else ()
