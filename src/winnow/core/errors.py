"""Domain errors and the one table that maps them to gRPC status codes.

Cores raise these; only `winnow.core.server` turns them into statuses. Anything else that escapes a handler
becomes INTERNAL with the request id, never the exception text.
"""

from __future__ import annotations

import grpc


class WinnowError(Exception):
    """Base of every error a caller may see. The message is shown to the caller: make it actionable."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class InvalidArgument(WinnowError):
    """The request is malformed; retrying it unchanged cannot succeed."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(WinnowError):
    code = grpc.StatusCode.NOT_FOUND


class Unauthenticated(WinnowError):
    """The request carries no valid `authorization: Bearer <token>` metadata."""

    code = grpc.StatusCode.UNAUTHENTICATED


class Overloaded(WinnowError):
    """Admission control refused the request; retry later with backoff (`retry_after_s`, when known, is sent
    to the caller as `retry-after-ms` trailing metadata)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


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
