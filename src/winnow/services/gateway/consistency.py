"""Write tokens and served-at stamps: per-partition log sequences in one small text form.

A write token says "the write I was acknowledged for is at sequence s of partition p" for every partition the
write touched; `served_at` says which sequence of each partition a search was answered from. Both use

    v1.<layout>.<p>:<seq>,<p>:<seq>       e.g.  v1.L2.0:17,1:9        (no partitions: v1.L2.)

`layout` names the shard layout the partitions belong to (a reshard makes a new one), so a token from another
layout is never mistaken for this one's (`required_seqs`: what a search's token asks of the current layout). This
module is the only place that writes or reads the form; it knows nothing of gRPC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from winnow.common.errors import InvalidArgument

VERSION = "v1"
MAX_TOKEN_CHARS = 4096
_LAYOUT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PART = re.compile(r"(\d{1,9}):(\d{1,20})")


def encode_token(layout: str, seqs: Mapping[int, int]) -> str:
    """The text form of `seqs` ({partition: sequence}) in `layout`; partitions in ascending order."""
    if not _LAYOUT.fullmatch(layout):
        raise ValueError(f"layout id {layout!r} must be 1-64 characters of [A-Za-z0-9_-]")
    parts = []
    for p in sorted(seqs):
        s = seqs[p]
        if p < 0 or s < 0:
            raise ValueError(f"partition {p} at sequence {s}: both must be >= 0")
        parts.append(f"{p}:{s}")
    return f"{VERSION}.{layout}.{','.join(parts)}"


def decode_token(token: str) -> tuple[str, dict[int, int]]:
    """(layout, {partition: sequence}) from a token; InvalidArgument saying what is wrong on anything else."""
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidArgument(f"write token is {len(token)} characters; the limit is {MAX_TOKEN_CHARS}")
    pieces = token.split(".")
    if len(pieces) != 3 or pieces[0] != VERSION:
        raise InvalidArgument(
            f"write token {_clip(token)!r} is not of the form {VERSION}.<layout>.<partition>:<seq>,...: "
            "pass the write_token an Upsert or Delete returned, unchanged")
    _, layout, body = pieces
    if not _LAYOUT.fullmatch(layout):
        raise InvalidArgument(f"write token {_clip(token)!r}: layout id {layout!r} is malformed")
    seqs: dict[int, int] = {}
    for part in body.split(",") if body else ():
        m = _PART.fullmatch(part)
        if m is None:
            raise InvalidArgument(f"write token {_clip(token)!r}: {part!r} is not <partition>:<seq>")
        p, s = int(m.group(1)), int(m.group(2))
        if p in seqs:
            raise InvalidArgument(f"write token {_clip(token)!r}: partition {p} appears twice")
        if s >= 1 << 64:
            raise InvalidArgument(f"write token {_clip(token)!r}: sequence {s} does not fit 64 bits")
        seqs[p] = s
    return layout, seqs


def merge(a: Mapping[int, int], b: Mapping[int, int]) -> dict[int, int]:
    """The later of two tokens' sequences per partition (two writes' tokens combined into one)."""
    out = dict(a)
    for p, s in b.items():
        out[p] = max(out.get(p, 0), s)
    return out


def satisfies(applied: Mapping[int, int], required: Mapping[int, int]) -> bool:
    """True when every partition's applied sequence is at least the required one."""
    return all(applied.get(p, 0) >= s for p, s in required.items())


def required_seqs(token_layout: str, token_seqs: tuple[tuple[int, int], ...], layout: str,
                  partitions: int) -> tuple[dict[int, int], list[str]]:
    """The sequences a search's write token (its layout and (partition, seq) pairs) asks for in the current
    `layout` of `partitions` shards, and why it cannot be honoured, if so: a token of another layout (the index
    was resharded) is answered without waiting; one naming a partition the layout lacks is an InvalidArgument."""
    if not token_layout:
        return {}, []
    if token_layout != layout:
        return {}, [f"the write token is for shard layout {token_layout!r} but searches now use {layout!r} "
                    "(the index was resharded): answered without waiting for it"]
    beyond = [p for p, _ in token_seqs if p >= partitions]
    if beyond:
        raise InvalidArgument(f"the write token names partition {beyond[0]}; layout {layout!r} has "
                              f"{partitions}: pass the token an Upsert or Delete returned, unchanged")
    return {p: s for p, s in token_seqs if s > 0}, []


def _clip(token: str, n: int = 80) -> str:
    return token if len(token) <= n else token[:n] + "..."
