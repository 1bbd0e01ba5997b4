"""Input checks of the shard: every bad input becomes a clear InvalidArgument before it can touch any state."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from winnow.common import limits
from winnow.common.errors import InvalidArgument
from winnow.services.index.model import Doc, FilterTerm, ShardConfig


def vector(values: Sequence[float] | np.ndarray, dim: int, normalize: bool, what: str = "vector") -> np.ndarray:
    """A float32 vector of length `dim`, finite, non-zero; unit-normalised when `normalize`."""
    v = np.asarray(values, dtype=np.float32).reshape(-1)
    if v.shape[0] != dim:
        raise InvalidArgument(f"{what} has dimension {v.shape[0]}; this shard's dimension is {dim}")
    if not np.isfinite(v).all():
        raise InvalidArgument(f"{what} contains NaN or infinity")
    norm = float(np.linalg.norm(v))
    if norm == 0.0 or not math.isfinite(norm):
        raise InvalidArgument(f"{what} is all zeros (or overflows); it has no direction to compare")
    return (v / norm).astype(np.float32) if normalize else v


def doc_id(value: str, max_bytes: int) -> str:
    """A non-empty id no longer than `max_bytes` UTF-8 bytes."""
    return limits.doc_id(value, "document id", limits.Limits(max_id_bytes=max_bytes))


def metadata(value: str, what: str, lim: limits.Limits = limits.DEFAULT_LIMITS) -> str:
    """The metadata JSON: an object ("" means {}), not too deep, finite numbers (the shared checks)."""
    if not value:
        return "{}"
    limits.metadata(value, f"{what}: metadata_json", lim)
    return value


def document(
    id_: str, values: Sequence[float], text: str, metadata_json: str, s: ShardConfig
) -> Doc:
    """A validated document ready for the log (the same checks as the gateway's, plus the vector)."""
    lim = s.limits()
    did = limits.doc_id(id_, "document id", lim)
    limits.payload(text, metadata_json, f"document {did[:64]!r}", lim)
    meta = metadata(metadata_json, f"document {did[:64]!r}", lim)
    vec = vector(values, s.dim, s.normalize, f"document {did[:64]!r} vector")
    return Doc(id=did, vector=vec, text=text, metadata_json=meta)


def filter_term(field: str, kind: str, value: object) -> FilterTerm:
    """A filter on a top-level metadata field; `kind` is the google.protobuf.Value kind name."""
    if not field:
        raise InvalidArgument("filter field must not be empty")
    if kind == "string_value":
        return FilterTerm(field, str(value))
    if kind == "bool_value":
        return FilterTerm(field, bool(value))
    if kind == "number_value":
        return FilterTerm(field, limits.filter_number(value, f"filter {field!r}"))  # type: ignore[arg-type]
    shown = kind or "unset"
    raise InvalidArgument(f"filter {field!r}: value must be a string, number or bool, got {shown}")


def k(value: int, max_k: int, what: str = "k") -> int:
    """1 <= k <= max_k."""
    if value <= 0:
        raise InvalidArgument(f"{what} must be at least 1, got {value}")
    if value > max_k:
        raise InvalidArgument(f"{what} is {value}; this shard's limit is {max_k} (max_k): use RangeSearch for more")
    return value


def threshold(value: float) -> float:
    """An inner-product threshold on unit vectors: finite and in [-1, 1]."""
    if not math.isfinite(value) or value < -1.0 or value > 1.0:
        raise InvalidArgument(f"threshold {value} is outside [-1, 1] (inner product of unit vectors)")
    return float(value)


def coarse_dim(value: int, dim: int) -> int:
    """0 (off) or a sweep dimension below the full one; the full dimension itself means no sweep (0)."""
    if value == dim:
        return 0
    if value and not 1 <= value < dim:
        raise InvalidArgument(f"coarse_dim {value} must be between 1 and {dim} (0 or {dim} turns the MRL sweep off)")
    return value
