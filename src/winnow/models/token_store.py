"""A persistent store of documents' token vectors for the late-interaction scorer: no cold cache after a restart.

One append-only file per (model, settings) in a directory; each record is a document's key (doc id + text hash,
as the in-memory cache keys it), its fp16 token matrix and whether its text was cut, with a CRC. Opening scans
the file once, keeps an index (key → offset) and cuts a torn tail left by a crash; reads are `pread`s of one
record; `warm` loads the newest records into the scorer's in-memory LRU up to its budget, so the first requests
after a restart are served warm. Writes append (buffered, no fsync per record: it is a cache, and a lost tail
is recomputed). The model id is in the file name, so a new model never reads another model's vectors.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import threading
import zlib
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_MAGIC = b"WTV1"
_HEAD = struct.Struct("<4sHIHB")  # magic, key length, tokens, dimension, truncated
_CRC = struct.Struct("<I")


def _key_bytes(key: tuple[str, str]) -> bytes:
    return f"{key[0]}\x00{key[1]}".encode("utf-8")


class TokenVectorStore:
    """Append-only, crash-tolerant file of token matrices keyed like `TokenVectorCache` (see module docstring)."""

    def __init__(self, directory: str | Path, model_id: str, variant: str = "") -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._@-]+", "_", f"{model_id}{'-' + variant if variant else ''}")
        self.path = self.dir / f"tokens-{safe}.log"
        self._lock = threading.Lock()
        self._index: dict[tuple[str, str], tuple[int, int, int, bool]] = {}  # key -> (data offset, n, dim, cut)
        self._fh = open(self.path, "a+b")  # noqa: SIM115 - held for the store's life
        self._scan()

    def _scan(self) -> None:
        self._fh.seek(0)
        data = self._fh.read()
        pos, good = 0, 0
        while pos + _HEAD.size <= len(data):
            magic, klen, n, dim, cut = _HEAD.unpack_from(data, pos)
            end = pos + _HEAD.size + klen + n * dim * 2 + _CRC.size
            if magic != _MAGIC or end > len(data):
                break
            (crc,) = _CRC.unpack_from(data, end - _CRC.size)
            if zlib.crc32(data[pos : end - _CRC.size]) != crc:
                break
            key_raw = data[pos + _HEAD.size : pos + _HEAD.size + klen].decode("utf-8")
            doc_id, _, text_hash = key_raw.partition("\x00")
            self._index[(doc_id, text_hash)] = (pos + _HEAD.size + klen, n, dim, bool(cut))
            pos = good = end
        if good < len(data):
            log.warning("token store %s: dropping a torn tail of %d bytes", self.path, len(data) - good)
            self._fh.truncate(good)
        self._fh.seek(0, os.SEEK_END)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._index

    def get(self, key: tuple[str, str]) -> tuple[np.ndarray, bool] | None:
        """(fp16 token matrix, truncated) or None."""
        entry = self._index.get(key)
        if entry is None:
            return None
        off, n, dim, cut = entry
        with self._lock:
            self._fh.flush()
            raw = os.pread(self._fh.fileno(), n * dim * 2, off)
        return np.frombuffer(raw, dtype=np.float16).reshape(n, dim), cut

    def put(self, key: tuple[str, str], vectors: np.ndarray, truncated: bool) -> None:
        """Append one document's matrix (a key already stored with the same text hash is kept as it is)."""
        if key in self._index:
            return
        mat = np.ascontiguousarray(vectors, dtype=np.float16)
        kb = _key_bytes(key)
        n, dim = mat.shape
        body = _HEAD.pack(_MAGIC, len(kb), n, dim, int(truncated)) + kb + mat.tobytes()
        with self._lock:
            start = self._fh.seek(0, os.SEEK_END)
            self._fh.write(body + _CRC.pack(zlib.crc32(body)))
            self._index[key] = (start + _HEAD.size + len(kb), n, dim, truncated)

    def warm(self, cache) -> int:
        """Load the newest records into `cache` (a TokenVectorCache) while they fit its budget; returns how many."""
        chosen, used = [], 0
        for key, (off, n, dim, _) in sorted(self._index.items(), key=lambda kv: -kv[1][0]):
            used += n * dim * 2
            if used > cache.max_bytes:
                break
            chosen.append(key)
        for key in reversed(chosen):  # oldest first, so the newest end up most recently used
            hit = self.get(key)
            if hit is not None:
                cache.put(key, hit[0], hit[1])
        return len(chosen)

    def flush(self) -> None:
        with self._lock:
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.flush()
                self._fh.close()
