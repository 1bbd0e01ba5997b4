"""Input checks of the shard: every bad input becomes a clear InvalidArgument before it can touch any state."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np

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
    if not value:
        raise InvalidArgument("document id must not be empty")
    if len(value.encode()) > max_bytes:
        raise InvalidArgument(f"document id is longer than {max_bytes} bytes (max_id_bytes)")
    return value


def metadata(value: str, what: str) -> str:
    """The metadata JSON, which must be an object ("" means {})."""
    if not value:
        return "{}"
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise InvalidArgument(f"{what}: metadata_json is not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise InvalidArgument(f"{what}: metadata_json must be a JSON object, got {type(parsed).__name__}")
    return value


def document(
    id_: str, values: Sequence[float], text: str, metadata_json: str, s: ShardConfig
) -> Doc:
    """A validated document ready for the log."""
    did = doc_id(id_, s.max_id_bytes)
    meta = metadata(metadata_json, f"document {did!r}")
    size = len(text.encode()) + len(meta.encode())
    if size > s.payload_max_bytes:
        raise InvalidArgument(
            f"document {did!r}: text + metadata is {size} bytes; the limit is {s.payload_max_bytes} (payload_max_bytes)"
        )
    vec = vector(values, s.dim, s.normalize, f"document {did!r} vector")
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
        number = float(value)  # type: ignore[arg-type]
        if not math.isfinite(number):
            raise InvalidArgument(f"filter {field!r}: number must be finite")
        return FilterTerm(field, number)
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
