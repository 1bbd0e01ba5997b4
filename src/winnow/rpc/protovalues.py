"""Python values <-> google.protobuf Value/Struct (protobuf only, no grpc): shared by the gateway and the Python client."""

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


def plain(value: Any) -> Any:
    """Struct numbers are doubles on the wire: integral ones come back as int (year 2020, not 2020.0)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A google.protobuf.Struct as plain Python (integral numbers as int)."""
    from google.protobuf.json_format import MessageToDict

    return plain(MessageToDict(struct))
