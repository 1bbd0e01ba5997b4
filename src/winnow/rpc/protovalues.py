"""Python scalars <-> google.protobuf.Value, for metadata filters (string, number or bool only)."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2


def to_value(value: Any) -> struct_pb2.Value:
    """bool, int/float and str map to their Value kinds; anything else is sent as its string form."""
    v = struct_pb2.Value()
    if isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, (int, float)):
        v.number_value = float(value)
    else:
        v.string_value = str(value)
    return v
