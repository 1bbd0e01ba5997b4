"""Domain errors, the one table that maps them to gRPC status codes, and the google.rpc.Status they become.

Cores raise these; only `winnow.core.server` turns them into statuses (via `rpc_status`). Anything else that
escapes a handler becomes INTERNAL with the request id, never the exception text.

Every error carries a machine-readable `reason` (ErrorInfo, UPPER_SNAKE, listed in docs/api.md); an invalid
argument names its `field` (BadRequest field violation); an overload says when to come back (RetryInfo).
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc

ERROR_DOMAIN = "winnow"


class WinnowError(Exception):
    """Base of every error a caller may see. The message is shown to the caller: make it actionable.

    reason: ErrorInfo.reason (defaults to the status name); field: the request field at fault (BadRequest);
    retry_after_s: RetryInfo.retry_delay; info: ErrorInfo.metadata (e.g. {"limit": "1000"}).
    """

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason: str = ""  # "" = the status code's name
    default_retry_after_s: float | None = None

    def __init__(self, message: str = "", *, reason: str = "", field: str = "",
                 retry_after_s: float | None = None, info: Mapping[str, object] | None = None) -> None:
        super().__init__(message)
        self.reason = reason or self.default_reason or status_for(self).name
        self.field = field
        self.retry_after_s = self.default_retry_after_s if retry_after_s is None else retry_after_s
        self.info = {k: str(v) for k, v in (info or {}).items()}


class InvalidArgument(WinnowError):
    """The request is malformed; retrying it unchanged cannot succeed."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(WinnowError):
    code = grpc.StatusCode.NOT_FOUND


class Unauthenticated(WinnowError):
    """The request carries no valid `authorization: Bearer <token>` metadata."""

    code = grpc.StatusCode.UNAUTHENTICATED


class Overloaded(WinnowError):
    """Admission control refused the request; retry later with backoff (RetryInfo says how long)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "OVERLOADED"
    default_retry_after_s = 0.2


class Unavailable(WinnowError):
    """A dependency (model, shard, disk) is not ready or not reachable; retrying may succeed."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(WinnowError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class FailedPrecondition(WinnowError):
    """The system is not in a state that allows this request (e.g. index not trained and no fallback)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Internal(WinnowError):
    """A bug or corrupted state: the message must not leak internals."""

    code = grpc.StatusCode.INTERNAL


#: The one mapping from error kind to gRPC status code. Order matters only for subclasses.
STATUS_TABLE: dict[type[BaseException], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Internal: grpc.StatusCode.INTERNAL,
    TimeoutError: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The status code for an exception; INTERNAL for anything not in the table."""
    for kind in type(exc).__mro__:
        if kind in STATUS_TABLE:
            return STATUS_TABLE[kind]
    return grpc.StatusCode.INTERNAL


def rpc_status(exc: BaseException, message: str, request_id: str = "", service: str = ""):
    """The google.rpc.Status a caller receives for `exc`: code, message, and details (ErrorInfo always;
    BadRequest when a field is named; RetryInfo when the caller should come back later)."""
    from google.protobuf import any_pb2, duration_pb2
    from google.rpc import error_details_pb2, status_pb2

    code = status_for(exc)
    is_domain = isinstance(exc, WinnowError)
    meta = {**(exc.info if is_domain else {}), **({"service": service} if service else {}),
            **({"request_id": request_id} if request_id else {})}
    details = [error_details_pb2.ErrorInfo(reason=exc.reason if is_domain else code.name, domain=ERROR_DOMAIN,
                                           metadata=meta)]
    if is_domain and exc.field:
        details.append(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=message)]))
    if is_domain and exc.retry_after_s is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(exc.retry_after_s * 1e9))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    return status_pb2.Status(code=code.value[0], message=message, details=packed)


def error_kind(exc: BaseException) -> str:
    """A short, low-cardinality label for metrics (`failures_total{kind=...}`)."""
    return status_for(exc).name.lower()


def from_rpc_error(err: grpc.RpcError, what: str) -> WinnowError:
    """Translate a downstream RpcError into a domain error, keeping the callee's message.

    `what` names the dependency ("embedder", "shard-1") so the caller knows which one failed.
    Client errors (INVALID_ARGUMENT) pass through as such; everything else is the dependency's failure.
    """
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    detail = err.details() if hasattr(err, "details") else str(err)
    msg = f"{what}: {detail}"
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(msg)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(msg)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return Overloaded(msg)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return FailedPrecondition(msg)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(msg)
    return Unavailable(f"{what} unavailable ({code.name}): {detail}")
