"""`python -m winnow.rpc.healthcheck HOST:PORT`: exit 0 when the service's grpc.health.v1 says SERVING.

For container health checks (docker-compose) without downloading `grpc_health_probe`. Exit codes follow
grpc_health_probe: 0 SERVING, 1 bad arguments, 2 connection failure or timeout, 4 not SERVING.
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

OK, BAD_ARGS, UNREACHABLE, NOT_SERVING = 0, 1, 2, 4


def _channel(target: str, tls_ca: str = "", tls_cert: str = "", tls_key: str = "") -> grpc.Channel:
    if not tls_ca:
        return grpc.insecure_channel(target)
    read = lambda p: open(p, "rb").read() if p else None  # noqa: E731
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(read(tls_ca), read(tls_key), read(tls_cert)))


def check(target: str, service: str = "", timeout_s: float = 2.0, tls_ca: str = "", tls_cert: str = "",
          tls_key: str = "") -> tuple[int, str]:
    """One health Check RPC to `target`; returns (exit code, human-readable status). `tls_ca` turns TLS on."""
    with _channel(target, tls_ca, tls_cert, tls_key) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            return UNREACHABLE, f"{target}: {exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return (OK if reply.status == health_pb2.HealthCheckResponse.SERVING else NOT_SERVING), f"{target}: {status}"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run one check, print the status line; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m winnow.rpc.healthcheck", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="HOST:PORT of the gRPC service, e.g. localhost:50051")
    parser.add_argument("--service", default="", help="service name to check; empty = the whole server")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the answer")
    parser.add_argument("--tls-ca", default="", help="PEM CA file: speak TLS to a service with TLS on")
    parser.add_argument("--tls-cert", default="", help="PEM client certificate (services requiring mTLS)")
    parser.add_argument("--tls-key", default="", help="PEM key of --tls-cert")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on bad arguments (2)
        return OK if exc.code == 0 else BAD_ARGS
    if ":" not in args.target:
        print(f"target must be HOST:PORT, got {args.target!r}", file=sys.stderr)
        return BAD_ARGS
    code, line = check(args.target, args.service, args.timeout, args.tls_ca, args.tls_cert, args.tls_key)
    print(line, file=sys.stdout if code == OK else sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
