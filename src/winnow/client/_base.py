"""What the blocking and the asyncio client share: configuration, deadlines, and turning answers into results."""

from __future__ import annotations

import time
from typing import Any

import grpc

from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.client import settings as _settings
from winnow.client.errors import InvalidArgumentError, WinnowError
from winnow.client.retry import RetryPolicy
from winnow.client.types import Limits, WriteResult

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Server answers that mean "this request is over a limit": fetch the limits again and re-split (nothing was written).
OVER_LIMIT_REASONS = frozenset({"TOO_MANY_ITEMS", "REQUEST_TOO_LARGE"})


class Deadline:
    """One call's overall deadline: every attempt and every backoff fits inside it."""

    def __init__(self, timeout: float) -> None:
        self.expires = time.monotonic() + timeout

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def allows(self, wait: float) -> bool:
        """Whether waiting `wait` seconds still leaves time for another attempt."""
        return self.remaining() - wait > 0.05


class ClientBase:
    """Settings, call metadata and the server limits, shared by WinnowClient and AsyncWinnowClient."""

    def __init__(self, target: str | None, token: str | None, tls: bool | None, tls_ca: str | None,
                 tls_cert: str | None, tls_key: str | None, tls_server_name: str | None, timeout: float,
                 retry: RetryPolicy | None, max_message_bytes: int,
                 settings: _settings.ClientSettings | None, read_your_writes: bool = True) -> None:
        base = settings or _settings.resolve()
        s = base.model_copy(update={k: v for k, v in dict(
            target=target, tls=tls, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key,
            tls_server_name=tls_server_name).items() if v is not None})
        if token is not None:
            s = s.model_copy(update={"token": _settings.SecretStr(token)})
        self.settings = s
        self.target = s.resolved_target()
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.metadata = _settings.call_metadata(s)
        self._credentials = _settings.channel_credentials(s)
        self._options = _settings.channel_options(s, max_message_bytes)
        self._limits: Limits | None = None
        # Session consistency: the writes this client made are covered by one merged token, sent with every
        # search that names none, so a search after this client's own write sees it (the log is acknowledged
        # before the replicas apply it; the gateway waits a bounded time for a replica that has).
        self.read_your_writes = read_your_writes
        self.session_token = ""

    def _remember(self, result: WriteResult) -> WriteResult:
        """Fold a write's token into the session token (read-your-writes for this client's later searches)."""
        if result.write_token:
            self.session_token = merge_write_tokens([self.session_token, result.write_token])
        return result

    def _read_token(self, write_token: str) -> str:
        """The token a search sends: the caller's own, else the session's when read_your_writes is on."""
        return write_token or (self.session_token if self.read_your_writes else "")

    def _observed(self, result: Any) -> Any:
        """After a reshard the session token names the old layout, which can no longer be waited for: drop it."""
        if self.session_token and result.served_at and \
                self.session_token.split(".")[1:2] != result.served_at.split(".")[1:2]:
            self.session_token = ""
        return result

    def _deadline(self, timeout: float | None) -> Deadline:
        return Deadline(self.timeout if timeout is None else timeout)

    def __repr__(self) -> str:
        tls = "tls" if self._credentials is not None else "plaintext"
        return f"{type(self).__name__}({self.target!r}, {tls}, token={'yes' if self.metadata else 'no'})"


def is_over_limit(err: WinnowError) -> bool:
    return isinstance(err, InvalidArgumentError) and err.reason in OVER_LIMIT_REASONS


def merge_write_tokens(tokens: list[str]) -> str:
    """One read-your-writes token covering several writes' tokens (`v1.<layout>.<p>:<seq>,...`): the latest
    sequence per partition. Tokens of different layouts (a reshard in between) cannot be merged: the last wins."""
    tokens = [t for t in tokens if t]
    if len(tokens) <= 1:
        return tokens[0] if tokens else ""
    try:
        parsed = [t.split(".", 2) for t in tokens]
        if len({(v, layout) for v, layout, _ in parsed}) != 1:
            return tokens[-1]
        seqs: dict[int, int] = {}
        for _, _, body in parsed:
            for part in filter(None, body.split(",")):
                p, q = part.split(":")
                seqs[int(p)] = max(seqs.get(int(p), 0), int(q))
    except ValueError:
        return tokens[-1]  # a format this client does not know: the gateway's own last word
    version, layout, _ = parsed[0]
    return f"{version}.{layout}." + ",".join(f"{p}:{q}" for p, q in sorted(seqs.items()))


def sum_writes(responses: list[Any], count_field: str) -> WriteResult:
    timings: dict[str, float] = {}
    for r in responses:
        for k, v in r.timings_ms.items():
            timings[k] = timings.get(k, 0.0) + v
    return WriteResult(
        count=sum(getattr(r, count_field) for r in responses), requests=len(responses),
        request_ids=tuple(r.request_id for r in responses), timings_ms=timings,
        write_token=merge_write_tokens([getattr(r, "write_token", "") for r in responses]), raw=tuple(responses),
    )


def limits_from_info(info: pb.ClusterInfoResponse) -> Limits:
    return Limits.from_proto(info.limits) if info.HasField("limits") else Limits()


def unimplemented(err: WinnowError) -> bool:
    return err.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNKNOWN)
