"""Which shard owns a document id: a stable hash, the same in every gateway replica and every release."""

from __future__ import annotations

import hashlib


def _key(doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "big")


def jump_hash(key: int, buckets: int) -> int:
    """Lamping & Veach's jump consistent hash: growing N to N+1 shards moves only 1/(N+1) of the ids."""
    if buckets <= 0:
        raise ValueError("buckets must be positive")
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def shard_for(doc_id: str, shards: int) -> int:
    return jump_hash(_key(doc_id), shards)


def group_by_shard(ids: list[str], shards: int) -> dict[int, list[int]]:
    """Positions of `ids` grouped by owning shard."""
    out: dict[int, list[int]] = {}
    for pos, doc_id in enumerate(ids):
        out.setdefault(shard_for(doc_id, shards), []).append(pos)
    return out
