"""Domain errors: what cores raise. No transport here.

Each kind has a short, low-cardinality `kind` label (metrics: `failures_total{kind=...}`). The one table that
maps kinds to gRPC status codes is `winnow.rpc.status`; anything else that escapes a handler becomes INTERNAL
with the request id, never the exception text.

Every error also carries what a program needs to react (sent as google.rpc.Status details by `winnow.rpc.status`):
a machine-readable `reason` (UPPER_SNAKE, listed in docs/api.md), the request `field` at fault, `retry_after_s`
when the caller should come back later, and `info` (e.g. {"limit": "1000"}).
"""

from __future__ import annotations

from collections.abc import Mapping

ERROR_DOMAIN = "winnow"


class WinnowError(Exception):
    """Base of every error a caller may see. The message is shown to the caller: make it actionable.

    reason: defaults to the kind in capitals; field: e.g. "k" or "documents[3].id"; retry_after_s: RetryInfo;
    info: ErrorInfo metadata.
    """

    kind: str = "internal"
    default_reason: str = ""  # "" = the kind in capitals
    default_retry_after_s: float | None = None

    def __init__(self, message: str = "", *, reason: str = "", field: str = "",
                 retry_after_s: float | None = None, info: Mapping[str, object] | None = None) -> None:
        super().__init__(message)
        self.reason = reason or self.default_reason or self.kind.upper()
        self.field = field
        self.retry_after_s = self.default_retry_after_s if retry_after_s is None else retry_after_s
        self.info = {k: str(v) for k, v in (info or {}).items()}


class InvalidArgument(WinnowError):
    """The request is malformed; retrying it unchanged cannot succeed.

    Raised before anything is written, so a rejected write changed nothing.
    """

    kind = "invalid_argument"


class NotFound(WinnowError):
    """What the request names (a document id, a model directory) does not exist."""

    kind = "not_found"


class Unauthenticated(WinnowError):
    """The request carries no valid `authorization: Bearer <token>` metadata.

    Only health and reflection are exempt; the token is compared in constant time.
    """

    kind = "unauthenticated"


class Overloaded(WinnowError):
    """Admission control or a full queue refused the request before any work was done; retry with backoff
    (RetryInfo / `retry-after-ms` trailing metadata say how long)."""

    kind = "resource_exhausted"
    default_reason = "OVERLOADED"
    default_retry_after_s = 0.2


class Unavailable(WinnowError):
    """A dependency (model, shard, disk) is not ready or not reachable; retrying may succeed.

    Also raised for a write that reached only some shards: the message says how much was written, and writes
    are idempotent, so retrying the whole request is safe.
    """

    kind = "unavailable"


class DeadlineExceeded(WinnowError):
    """The request's deadline passed before the answer was ready (asyncio's TimeoutError counts the same)."""

    kind = "deadline_exceeded"


class FailedPrecondition(WinnowError):
    """The system is not in a state that allows this request (e.g. index not trained and no fallback).

    Retrying helps only once that state has changed.
    """

    kind = "failed_precondition"


class Internal(WinnowError):
    """A bug or corrupted state: the message must not leak internals."""

    kind = "internal"


def error_kind(exc: BaseException) -> str:
    """A short, low-cardinality label for metrics (`failures_total{kind=...}`); "internal" for non-domain errors.

    Equals the lower-cased name of the status code `winnow.rpc.status` maps the error to.
    """
    if isinstance(exc, WinnowError):
        return exc.kind
    if isinstance(exc, TimeoutError):
        return DeadlineExceeded.kind
    return Internal.kind


def short(exc: BaseException) -> str:
    """A one-line description for coverage lists and logs: a domain error's message, else only its type."""
    return str(exc) if isinstance(exc, WinnowError) else type(exc).__name__
