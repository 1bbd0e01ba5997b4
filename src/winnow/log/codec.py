"""One log message = one document version or one tombstone. Plain bytes, no pickle:

    <u8 format=1><u8 op><u32 n><id> [upsert: <u32 n><text><u32 n><metadata_json><u32 dim><dim x f32 LE>]

The embedded vector travels with the text, so replicas, rebuilds and reshards never embed again.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

FORMAT = 1
OP_UPSERT, OP_DELETE = 1, 2
_HEAD = struct.Struct("<BB")
_U32 = struct.Struct("<I")


@dataclass
class LogRecord:
    """A decoded message; `seq` is its stream sequence (0 before it was written)."""

    op: int
    id: str
    vector: np.ndarray | None = None
    text: str = ""
    metadata_json: str = ""
    seq: int = 0


class CodecError(ValueError):
    """A message this build cannot read (another format, or truncated)."""


def encode_upsert(doc_id: str, vector: np.ndarray, text: str, metadata_json: str) -> bytes:
    v = np.ascontiguousarray(vector, dtype="<f4").reshape(-1)
    parts = [_HEAD.pack(FORMAT, OP_UPSERT)]
    for s in (doc_id, text, metadata_json):
        b = s.encode("utf-8")
        parts += [_U32.pack(len(b)), b]
    parts += [_U32.pack(v.shape[0]), v.tobytes()]
    return b"".join(parts)


def encode_delete(doc_id: str) -> bytes:
    b = doc_id.encode("utf-8")
    return _HEAD.pack(FORMAT, OP_DELETE) + _U32.pack(len(b)) + b


def decode(data: bytes, seq: int = 0) -> LogRecord:
    try:
        fmt, op = _HEAD.unpack_from(data, 0)
        if fmt != FORMAT:
            raise CodecError(f"log message format {fmt}; this build reads {FORMAT}")
        pos = _HEAD.size
        strs = []
        for _ in range(1 if op == OP_DELETE else 3):
            (n,) = _U32.unpack_from(data, pos)
            if pos + 4 + n > len(data):
                raise CodecError("log message is truncated")
            strs.append(data[pos + 4:pos + 4 + n].decode("utf-8"))
            pos += 4 + n
        if op == OP_DELETE:
            return LogRecord(OP_DELETE, strs[0], seq=seq)
        if op != OP_UPSERT:
            raise CodecError(f"unknown log op {op}")
        (dim,) = _U32.unpack_from(data, pos)
        pos += 4
        if pos + 4 * dim != len(data):
            raise CodecError(f"log message vector is {len(data) - pos} bytes; expected {4 * dim}")
        vec = np.frombuffer(data, "<f4", dim, pos).astype(np.float32)
        return LogRecord(OP_UPSERT, strs[0], vec, strs[1], strs[2], seq)
    except (struct.error, UnicodeDecodeError) as exc:
        raise CodecError(f"log message is malformed ({exc})") from None
