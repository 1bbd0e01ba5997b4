"""The one place that holds the input limits, and the checks both the gateway and the shard run with them.

The gateway checks a whole request with these before it touches any downstream service (so a batch with one bad
document writes nothing, and a bad value is INVALID_ARGUMENT naming the field instead of a shard's failure that
reads as UNAVAILABLE); the shard runs the same functions as its own last line of defence. Both services' settings
take their defaults from `DEFAULT_LIMITS`, so the two cannot drift unless an operator configures them apart
(then the gateway's stricter-or-equal limits still refuse first; see docs/hardening.md).

Pure: no grpc. Every check raises `InvalidArgument` whose message starts with the field.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from winnow.common.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class Limits:
    """Input limits shared by the gateway and the shards (each service's settings expose them as fields)."""

    max_id_bytes: int = 512
    """Longest document id, in UTF-8 bytes."""
    payload_max_bytes: int = 64 * 1024
    """Largest text + metadata_json of one document, in UTF-8 bytes."""
    max_metadata_depth: int = 32
    """Deepest nesting of objects/arrays in metadata_json (deeper JSON would exhaust the parser's stack)."""
    max_k: int = 10_000
    """Largest k / lexical_k one shard search may ask for."""
    max_ef_search: int = 4096
    """Largest HNSW efSearch a request may set (each query allocates O(ef_search) per shard)."""
    max_nprobe: int = 65_536
    """Largest IVF nprobe a request may set."""
    max_dim: int = 65_536
    """Largest vector dimension (and so MRL dimension) any service accepts."""


DEFAULT_LIMITS = Limits()

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """Nesting depth of a JSON text without parsing it (no recursion, so 100k-deep input is safe)."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub('""', text)):
        if m.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON (only finite numbers are)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} overflows to infinity")
    return value


def metadata(value: str, field: str, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Parse metadata_json: a JSON object ("" = {}), nested at most `max_metadata_depth`, numbers finite."""
    if not value:
        return {}
    depth = json_depth(value)
    if depth > limits.max_metadata_depth:
        raise InvalidArgument(f"{field}: nested {depth} levels deep; the limit is {limits.max_metadata_depth} "
                              "(max_metadata_depth)")
    try:
        parsed = json.loads(value, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:  # depth counting missed a case: still a clear refusal, never INTERNAL
        raise InvalidArgument(f"{field}: nested too deep") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError; so are NaN/Infinity and overflowing numbers
        raise InvalidArgument(f"{field} is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidArgument(f"{field} must be a JSON object, got {type(parsed).__name__}")
    return parsed


def doc_id(value: str, field: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """A non-blank id of at most `max_id_bytes` UTF-8 bytes."""
    if not value or not value.strip():
        raise InvalidArgument(f"{field} is empty: every document needs an id")
    size = len(value.encode())
    if size > limits.max_id_bytes:
        raise InvalidArgument(f"{field} is {size} bytes; the limit is {limits.max_id_bytes} (max_id_bytes)")
    return value


def payload(text: str, metadata_json: str, field: str, limits: Limits = DEFAULT_LIMITS) -> int:
    """text + metadata_json within `payload_max_bytes`; returns the size."""
    size = len(text.encode()) + len(metadata_json.encode())
    if size > limits.payload_max_bytes:
        raise InvalidArgument(f"{field}: text + metadata_json is {size} bytes; the limit is "
                              f"{limits.payload_max_bytes} (payload_max_bytes)")
    return size


def document(id_: str, text: str, metadata_json: str, field: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Every check of one document that does not need its vector (id, size, metadata)."""
    doc_id(id_, f"{field}.id", limits)
    payload(text, metadata_json, field, limits)
    metadata(metadata_json, f"{field}.metadata_json", limits)


def filter_number(value: float, field: str) -> float:
    """A filter's number: finite (NaN never equals anything, infinity is not JSON)."""
    number = float(value)
    if not math.isfinite(number):
        raise InvalidArgument(f"{field}: number must be finite, got {value}")
    return number


def search_params(limits: Limits = DEFAULT_LIMITS, *, ef_search: int = 0, nprobe: int = 0) -> None:
    """Per-request ANN parameters: 0 (the shard's default) up to the limits."""
    if not 0 <= ef_search <= limits.max_ef_search:
        raise InvalidArgument(f"ef_search is {ef_search}; use 0 (the shard's default) up to "
                              f"{limits.max_ef_search} (max_ef_search)")
    if not 0 <= nprobe <= limits.max_nprobe:
        raise InvalidArgument(f"nprobe is {nprobe}; use 0 (the shard's default) up to {limits.max_nprobe} "
                              "(max_nprobe)")


def mrl_dim(value: int, dimension: int, allowed: tuple[int, ...] = (), field: str = "mrl_dim") -> int:
    """0 (off), the full `dimension` (off), or a sweep dimension below it (one of `allowed` when known).

    `dimension` 0 means the model's dimension is not known yet; then only the absolute bound applies."""
    if value == 0 or value == dimension:
        return value
    if dimension and not 1 <= value < dimension:
        raise InvalidArgument(f"{field} is {value}; the model's dimension is {dimension}: use 0 or a smaller "
                              f"dimension{' (' + ', '.join(map(str, allowed)) + ')' if allowed else ''}")
    if not dimension and value > DEFAULT_LIMITS.max_dim:
        raise InvalidArgument(f"{field} is {value}; the limit is {DEFAULT_LIMITS.max_dim}")
    return value


class LimitSettings(BaseModel):
    """The limits as settings fields, mixed into the gateway's and the shard's settings (same names, same
    defaults, from `Limits`); `limits()` gives the frozen `Limits` the checks take."""

    max_id_bytes: int = Field(DEFAULT_LIMITS.max_id_bytes, ge=1, description="Longest document id, UTF-8 bytes.")
    payload_max_bytes: int = Field(
        DEFAULT_LIMITS.payload_max_bytes, ge=1, description="Largest text + metadata_json of one document, UTF-8 bytes."
    )
    max_metadata_depth: int = Field(
        DEFAULT_LIMITS.max_metadata_depth, ge=1, description="Deepest nesting of objects/arrays in metadata_json."
    )
    max_ef_search: int = Field(
        DEFAULT_LIMITS.max_ef_search, ge=1, description="Largest HNSW ef_search a request may set (memory per query)."
    )
    max_nprobe: int = Field(DEFAULT_LIMITS.max_nprobe, ge=1, description="Largest IVF nprobe a request may set.")

    def limits(self) -> Limits:
        """These fields as the `Limits` the checks take."""
        return Limits(max_id_bytes=self.max_id_bytes, payload_max_bytes=self.payload_max_bytes,
                      max_metadata_depth=self.max_metadata_depth, max_ef_search=self.max_ef_search,
                      max_nprobe=self.max_nprobe)
