"""What a failed call raises: one exception type per kind of failure, with the server's structured details.

Every exception is a `WinnowError` and keeps the gRPC status `code`, the server's message, and what the
`google.rpc.Status` details said: the ErrorInfo `reason`, BadRequest `field_violations`, RetryInfo `retry_delay`.

    try:
        client.search("", k=10)
    except InvalidArgumentError as err:
        print(err.reason, err.field_violations)      # QUERY_EMPTY [('query', 'query is empty: ...')]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc


class WinnowError(grpc.RpcError):
    """A call to the gateway failed. `code()` is the grpc.StatusCode and `details()` the server's message, as on
    any grpc.RpcError (so `except grpc.RpcError` keeps working); the rest are the decoded status details."""

    retryable = False

    def __init__(self, code: grpc.StatusCode, message: str, *, reason: str = "",
                 field_violations: Sequence[tuple[str, str]] = (), retry_delay: float | None = None,
                 info: dict[str, str] | None = None, request_id: str = "") -> None:
        super().__init__(message)
        self._code = code
        self.message = message
        self.reason = reason
        self.field_violations = list(field_violations)
        self.retry_delay = retry_delay
        self.info = dict(info or {})
        self.request_id = request_id

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self.message

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description (what `winnow ... --json` prints on failure)."""
        out: dict[str, Any] = {"code": self._code.name, "message": self.message}
        if self.reason:
            out["reason"] = self.reason
        if self.field_violations:
            out["field_violations"] = [{"field": f, "description": d} for f, d in self.field_violations]
        if self.retry_delay is not None:
            out["retry_delay_s"] = self.retry_delay
        if self.request_id:
            out["request_id"] = self.request_id
        return out


class InvalidArgumentError(WinnowError):
    """The request is malformed (field_violations say which field); retrying it unchanged cannot succeed."""


class UnauthenticatedError(WinnowError):
    """No token, or the wrong one: set `token=` or WINNOW_TOKEN."""


class PermissionDeniedError(WinnowError):
    """The token is valid but may not do this."""


class NotFoundError(WinnowError):
    """A named thing does not exist."""


class FailedPreconditionError(WinnowError):
    """The cluster is not in a state that allows this request."""


class ResourceExhaustedError(WinnowError):
    """The server is at its admission limit; retried with backoff by the client (retry_delay when it said)."""

    retryable = True


class UnavailableError(WinnowError):
    """The gateway (or every replica of a dependency) cannot be reached now; retried with backoff."""

    retryable = True


class DeadlineExceededError(WinnowError):
    """The call did not finish within its timeout."""


class CancelledError(WinnowError):
    """The call was cancelled."""


class InternalError(WinnowError):
    """A server bug; the message carries a request id to find it in the logs."""


_BY_CODE: dict[grpc.StatusCode, type[WinnowError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.CANCELLED: CancelledError,
}


def _details(call: Any) -> dict[str, Any]:
    """Decode the google.rpc.Status details of a failed call (empty when it carries none)."""
    try:
        from google.rpc import error_details_pb2
        from grpc_status import rpc_status
    except ImportError:  # pragma: no cover - grpcio-status is a dependency
        return {}
    try:
        status = rpc_status.from_call(call)
    except Exception:  # noqa: BLE001 - a malformed trailer must not hide the real error
        return {}
    out: dict[str, Any] = {}
    if status is None:
        return out
    for any_ in status.details:
        if any_.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_.Unpack(info)
            out["reason"] = info.reason
            out["info"] = dict(info.metadata)
        elif any_.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_.Unpack(bad)
            out["field_violations"] = [(v.field, v.description) for v in bad.field_violations]
        elif any_.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            any_.Unpack(retry)
            out["retry_delay"] = retry.retry_delay.ToTimedelta().total_seconds()
    return out


def from_rpc_error(err: grpc.RpcError) -> WinnowError:
    """The typed exception for a grpc.RpcError (sync or aio), details decoded."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    message = (err.details() if hasattr(err, "details") else "") or code.name
    if code == grpc.StatusCode.UNAVAILABLE and "failed to connect" in message.lower():
        message = f"gateway unreachable: {message}"
    request_id = ""
    try:
        for key, value in err.trailing_metadata() or ():  # type: ignore[attr-defined]
            if key == "x-request-id":
                request_id = str(value)
    except Exception:  # noqa: BLE001
        pass
    kind = _BY_CODE.get(code, InternalError if code == grpc.StatusCode.INTERNAL else WinnowError)
    return kind(code, message, request_id=request_id, **_details(err))
