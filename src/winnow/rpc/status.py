"""The one table mapping domain errors to gRPC status codes, the google.rpc.Status a caller receives (with
ErrorInfo / BadRequest / RetryInfo details), and the inverse for errors from downstream calls."""

from __future__ import annotations

import grpc

from winnow.common.errors import (
    ERROR_DOMAIN, DeadlineExceeded, FailedPrecondition, Internal, InvalidArgument, NotFound, Overloaded,
    Unauthenticated, Unavailable, WinnowError,
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

#: Trailing-metadata key of the serialized google.rpc.Status (what grpcio-status and other languages read).
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The status code for an exception; INTERNAL for anything not in the table."""
    for kind in type(exc).__mro__:
        if kind in STATUS_TABLE:
            return STATUS_TABLE[kind]
    return grpc.StatusCode.INTERNAL


def rpc_status(exc: BaseException, message: str, request_id: str = "", service: str = ""):
    """The google.rpc.Status a caller receives for `exc`: code, message, and details (ErrorInfo always, with the
    error's reason; BadRequest when it names a field; RetryInfo when the caller should come back later)."""
    from google.protobuf import any_pb2, duration_pb2
    from google.rpc import error_details_pb2, status_pb2

    code = status_for(exc)
    domain = exc if isinstance(exc, WinnowError) else None
    meta = {**(domain.info if domain else {}), **({"service": service} if service else {}),
            **({"request_id": request_id} if request_id else {})}
    details = [error_details_pb2.ErrorInfo(reason=domain.reason if domain else code.name, domain=ERROR_DOMAIN,
                                           metadata=meta)]
    if domain is not None and domain.field:
        details.append(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=domain.field, description=message)]))
    if domain is not None and domain.retry_after_s is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(domain.retry_after_s * 1e9))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    return status_pb2.Status(code=code.value[0], message=message, details=packed)


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
