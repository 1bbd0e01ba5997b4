"""Payloads of the hits a search returns, fetched after fusion: text and metadata come from the shard that returned
each candidate (`payloads=final` fetches all of them; `inline` only those past a shard list's inline top). No gRPC
in here.
"""

from __future__ import annotations

import asyncio
import time

from winnow.common import tracing
from winnow.common.deadline import Deadline
from winnow.common.errors import short
from winnow.services.gateway.model import Candidate, Coverage
from winnow.services.gateway.ports import Hit
from winnow.services.gateway.stages import SERVICE, ms_since
from winnow.services.gateway.topology import ShardLayout


async def fetch_payloads(cands: list[Candidate], owner: dict[str, int], layout: ShardLayout, deadline: Deadline,
                         coverage: Coverage, timings: dict[str, float]) -> list[Candidate]:
    """Fill text and metadata from the shards that returned each candidate, one Get per shard, concurrently.

    A candidate whose shard fails here is left out and the shard is reported in the coverage (so the answer
    is not cached); one deleted since the search is left out silently, as a search just after would.
    """
    groups: dict[int, list[str]] = {}
    for c in cands:
        if not c.text:  # a shard that ignores include_payloads=False already sent it
            groups.setdefault(owner[c.id], []).append(c.id)
    if not groups:
        return cands
    t = time.perf_counter()
    timeout = deadline.timeout(fraction=0.5)
    with tracing.span("fetch", service=SERVICE, documents=sum(map(len, groups.values()))):
        results = await asyncio.gather(*(layout.shards[i].get(ids, timeout) for i, ids in groups.items()),
                                       return_exceptions=True)
    found: dict[str, Hit] = {}
    for i, res in zip(groups, results):
        if isinstance(res, BaseException):
            coverage.failed.append(f"{layout.shards[i].name}: payloads: {short(res)}")
            coverage.answered -= 1
            continue
        found.update((h.id, h) for h in res[0])
    kept = []
    for c in cands:
        if not c.text:
            h = found.get(c.id)
            if h is None:
                continue
            c.text, c.metadata_json = h.text, h.metadata_json
        kept.append(c)
    timings["fetch"] = ms_since(t)
    return kept
