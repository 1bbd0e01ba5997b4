"""The one table mapping domain errors to gRPC status codes, and its inverse for errors from downstream calls."""

from __future__ import annotations

import grpc

from winnow.common.errors import (
    DeadlineExceeded, FailedPrecondition, Internal, InvalidArgument, NotFound, Overloaded, Unauthenticated,
    Unavailable, WinnowError,
)

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
