"""TLS (and mTLS) for every hop, from settings: server credentials for a service's port, channel credentials and
the bearer credential for the calls a service makes.

Server side (every service, `ServiceSettings`): `tls_cert_file` + `tls_key_file` turn TLS on for the gRPC port;
`tls_client_ca_file` also requires client certificates signed by that CA (mTLS). Client side (the gateway's hops to
the internal services, `GatewaySettings.internal_*`): a CA to verify the services, an optional client certificate,
and the token the internal services require (`auth_token` on them), so internal auth can be on.

Files are read once at start-up; certificates are PEM. Kubernetes mounts them from cert-manager-style
`kubernetes.io/tls` Secrets (tls.crt, tls.key, ca.crt): deploy/k8s/base/tls.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{what}: cannot read {path!r} ({exc.strerror})") from None


def server_credentials(cert_file: str, key_file: str, client_ca_file: str = "") -> grpc.ServerCredentials | None:
    """TLS credentials for a server port (None = plaintext); with `client_ca_file`, clients must present a
    certificate it signed (mTLS)."""
    if not cert_file and not key_file:
        if client_ca_file:
            raise ValueError("tls_client_ca_file needs tls_cert_file and tls_key_file (mTLS is TLS plus client certs)")
        return None
    if not (cert_file and key_file):
        raise ValueError("TLS needs both tls_cert_file and tls_key_file")
    pair = (_read(key_file, "tls_key_file"), _read(cert_file, "tls_cert_file"))
    ca = _read(client_ca_file, "tls_client_ca_file") if client_ca_file else None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


@dataclass(frozen=True)
class ChannelSecurity:
    """How a service calls another: TLS roots (None = plaintext), an optional client cert/key (mTLS), the bearer
    token to send, and a name to verify instead of the target's host (certificates issued for a Service name)."""

    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    token: str = ""
    server_name: str = ""

    @property
    def tls(self) -> bool:
        return self.ca is not None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.ca, private_key=self.key,
                                            certificate_chain=self.cert)

    def options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.tls and self.server_name else []


PLAINTEXT = ChannelSecurity()


def channel_security(ca_file: str = "", cert_file: str = "", key_file: str = "", token: str = "",
                     server_name: str = "") -> ChannelSecurity:
    """Read the files of a ChannelSecurity; no CA means plaintext (then a client certificate makes no sense)."""
    if (cert_file or key_file) and not ca_file:
        raise ValueError("a client certificate needs the CA of the servers too (TLS first, then mTLS)")
    if bool(cert_file) != bool(key_file):
        raise ValueError("a client certificate needs both its cert and key files")
    return ChannelSecurity(
        ca=_read(ca_file, "CA file") if ca_file else None,
        cert=_read(cert_file, "client cert file") if cert_file else None,
        key=_read(key_file, "client key file") if key_file else None,
        token=token, server_name=server_name,
    )
