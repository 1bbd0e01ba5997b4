"""The write-ahead log: one framed, checksummed record per write, fsynced before the write is acknowledged.

Frame: `<u32 body length><u32 crc32(body)><u64 generation>` then the body. A crash can only leave a torn tail
(a short or corrupt last record, never acknowledged): replay stops there and truncates it, so the next append
starts on a clean boundary. A bad record that is *not* at the tail of the newest segment is corruption, and the
shard refuses to start rather than silently losing acknowledged writes.

Segments are named `wal-<generation of the snapshot they follow>.log`; a new one starts after every snapshot.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from winnow.common.errors import Internal, Unavailable
from winnow.services.index.model import Doc

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<IIQ")
_U32 = struct.Struct("<I")
OP_UPSERT, OP_DELETE, OP_TRAIN = 1, 2, 3


@dataclass
class Record:
    generation: int
    op: int
    docs: list[Doc]
    ids: list[str]


def _put_str(out: list[bytes], s: str) -> None:
    b = s.encode()
    out.append(_U32.pack(len(b)))
    out.append(b)


def encode(op: int, docs: list[Doc] = (), ids: list[str] = ()) -> bytes:  # type: ignore[assignment]
    """The body of one record."""
    out = [bytes([op])]
    if op == OP_UPSERT:
        out.append(_U32.pack(len(docs)))
        for d in docs:
            _put_str(out, d.id)
            _put_str(out, d.text)
            _put_str(out, d.metadata_json)
        if docs:
            out.append(np.stack([d.vector for d in docs]).astype("<f4").tobytes())
    elif op == OP_DELETE:
        out.append(_U32.pack(len(ids)))
        for i in ids:
            _put_str(out, i)
    return b"".join(out)


def decode(generation: int, body: bytes, dim: int) -> Record:
    """Parse a body written by `encode`."""
    op, pos = body[0], 1

    def get_str() -> str:
        nonlocal pos
        (n,) = _U32.unpack_from(body, pos)
        s = body[pos + 4 : pos + 4 + n].decode()
        pos += 4 + n
        return s

    docs: list[Doc] = []
    ids: list[str] = []
    if op in (OP_UPSERT, OP_DELETE):
        (count,) = _U32.unpack_from(body, pos)
        pos += 4
        if op == OP_UPSERT:
            heads = [(get_str(), get_str(), get_str()) for _ in range(count)]
            vecs = np.frombuffer(body, "<f4", count * dim, pos).reshape(count, dim).astype(np.float32)
            docs = [Doc(i, vecs[j], t, m) for j, (i, t, m) in enumerate(heads)]
        else:
            ids = [get_str() for _ in range(count)]
    elif op != OP_TRAIN:
        raise ValueError(f"unknown op {op}")
    return Record(generation, op, docs, ids)


def fsync_dir(path: Path) -> None:
    """Make a rename/creation in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def segments(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob("wal-*.log"))


def segment_base(path: Path) -> int:
    return int(path.stem.split("-", 1)[1])


class WriteAheadLog:
    """Appends records to the newest segment; `fsync=False` skips the fsync (benchmarks only)."""

    def __init__(self, data_dir: Path, fsync: bool = True) -> None:
        self.data_dir = data_dir
        self.fsync = fsync
        self._file = None
        self.path: Path | None = None

    def open_segment(self, base_generation: int) -> None:
        """Append to `wal-<base>.log` (created, and the directory fsynced, when new)."""
        self.close()
        self.path = self.data_dir / f"wal-{base_generation:020d}.log"
        created = not self.path.exists()
        self._file = open(self.path, "ab", buffering=0)
        if created and self.fsync:
            os.fsync(self._file.fileno())
            fsync_dir(self.data_dir)

    def append(self, generation: int, body: bytes) -> None:
        """Write one record and make it durable; returns only once it would survive kill -9 / power loss."""
        if self._file is None:
            raise Internal("write-ahead log is not open")
        frame = _FRAME.pack(len(body), zlib.crc32(body), generation) + body
        start = self._file.tell()
        try:
            written = self._file.write(frame)
            if written != len(frame):
                raise OSError("short write")
            if self.fsync:
                os.fsync(self._file.fileno())
        except OSError as exc:
            # Undo a partial frame so later records do not follow garbage; the write is not acknowledged.
            try:
                self._file.truncate(start)
                self._file.seek(start)
            except OSError:
                pass
            raise Unavailable(f"could not write the log ({exc.strerror or exc}); the write was not applied") from None

    def size(self) -> int:
        return self._file.tell() if self._file is not None else 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def replay(data_dir: Path, after: int, dim: int) -> Iterator[Record]:
    """Records with generation > `after`, oldest first, across every segment; truncates a torn tail."""
    segs = segments(data_dir)
    for n, path in enumerate(segs):
        newest = n == len(segs) - 1
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            bad = pos + _FRAME.size > len(data)
            if not bad:
                length, crc, gen = _FRAME.unpack_from(data, pos)
                body = data[pos + _FRAME.size : pos + _FRAME.size + length]
                bad = len(body) != length or zlib.crc32(body) != crc
            if bad:
                if not newest:
                    raise Internal(f"write-ahead log {path.name} is corrupt at byte {pos}; refusing to start")
                log.warning("truncating torn log tail", extra={"fields": {"segment": path.name, "at": pos, "size": len(data)}})
                with open(path, "r+b") as f:
                    f.truncate(pos)
                    os.fsync(f.fileno())
                break
            pos += _FRAME.size + length
            if gen > after:
                yield decode(gen, body, dim)
