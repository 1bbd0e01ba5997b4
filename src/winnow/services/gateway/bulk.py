"""Bulk mode: every document scoring >= a threshold (capped), merged across the shards' range-search streams and
sent on in pages, with no reranker truncation. A cursor resumes a stream after its last sent hit. No gRPC in here.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from winnow.common import metrics
from winnow.common.deadline import Deadline
from winnow.common.errors import Unavailable, short
from winnow.services.gateway.consistency import encode_token, required_seqs
from winnow.services.gateway.cursor import Position
from winnow.services.gateway.model import Candidate, Coverage, Mode, SearchOptions
from winnow.services.gateway.ports import Hit, ShardPort, ShardRangeQuery
from winnow.services.gateway.stages import ms_since
from winnow.services.gateway.topology import ShardLayout

#: The query's embedding: (query, deadline, timings) -> vector (`SearchCore._embed_query`).
Embed = Callable[[str, Deadline, dict[str, float]], Awaitable[np.ndarray]]


@dataclass
class BulkPage:
    hits: list[Candidate]
    page: int
    last: bool
    total: int
    coverage: Coverage
    timings_ms: dict[str, float] = field(default_factory=dict)
    served_at: str = ""          # the newest sequence each shard's replicas reported when the stream began
    consistency_unmet: str = ""


async def bulk_pages(opts: SearchOptions, deadline: Deadline, max_results: int, layout: ShardLayout, embed: Embed,
                     resume: Position | None = None) -> AsyncIterator[BulkPage]:
    """`SearchCore.bulk` in one `layout` (held for the whole stream): every document scoring >= opts.threshold,
    capped at max_results, merged across the layout's shards, in pages of opts.page_size; `resume` carries on after
    a cursor's position. `embed` makes the query's vector when the request brought none."""
    if not layout.shards:
        raise Unavailable("no shard is known yet (discovery has not found any)")
    required, unmet = required_seqs(opts.token_layout, opts.token_seqs, layout.id, len(layout.shards))
    if required:
        unmet.extend(await _await_seqs(layout, required, deadline))
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    known = {p: _known_seq(s) for p, s in enumerate(layout.shards)}
    stamp = dict(served_at=encode_token(layout.id, {p: s for p, s in known.items() if s is not None}),
                 consistency_unmet="; ".join(unmet))
    vector = opts.vector if opts.vector is not None else await embed(opts.query, deadline, timings)
    query = ShardRangeQuery(
        vector=vector, threshold=opts.threshold, page_size=opts.page_size, filters=opts.filters,
        coarse_dim=opts.mrl_dim, max_results=max_results, nprobe=opts.nprobe, ef_search=opts.ef_search,
    )
    coverage = Coverage(asked=len(layout.shards))
    t = time.perf_counter()
    merged = _merge_streams([s.range_search(query, deadline.timeout(fraction=0.95)) for s in layout.shards],
                            [s.name for s in layout.shards], coverage)
    page, total = (resume.pages, resume.sent) if resume else (0, 0)
    buf: list[Candidate] = []
    async for hit in merged:
        if total >= max_results:
            break
        if resume is not None and not resume.after(hit.score, hit.id):
            continue  # sent before the cursor
        buf.append(hit)
        total += 1
        if len(buf) >= opts.page_size:
            timings["search"] = ms_since(t)
            timings["total"] = ms_since(t0)
            yield BulkPage(buf, page, False, total, coverage, dict(timings), **stamp)
            page, buf = page + 1, []
    await merged.aclose()
    timings["search"] = ms_since(t)
    if coverage.answered == 0 and coverage.asked:
        raise Unavailable(f"no shard answered: {'; '.join(coverage.failed)}")
    timings["total"] = ms_since(t0)
    metrics.COVERAGE.observe(coverage.ratio)
    metrics.SEARCH_RESULTS.labels(Mode.BULK.value).observe(total)
    yield BulkPage(buf, page, True, total, coverage, dict(timings), **stamp)


async def _await_seqs(layout: ShardLayout, required: dict[int, int], deadline: Deadline) -> list[str]:
    """Bulk streams carry no sequence: wait (bounded) until some replica of each shard reported the token's."""
    limit = deadline.timeout(fraction=0.3)
    end = None if limit is None else time.monotonic() + limit
    while True:
        behind = [(p, s) for p, s in required.items() if (_known_seq(layout.shards[p]) or 0) < s]
        if not behind or (end is not None and time.monotonic() >= end):
            break
        await asyncio.sleep(0.01)  # sequences arrive over the replicas' Watch streams
    return [f"{layout.shards[p].name}: no replica reported sequence {s} in time" for p, s in behind]


def _known_seq(shard: ShardPort) -> int | None:
    known = getattr(shard, "known_seq", None)  # replica sets know it; plain in-process shards do not
    return known() if known is not None else None


async def _merge_streams(streams: list[AsyncIterator[list[Hit]]], names: list[str],
                         coverage: Coverage) -> AsyncIterator[Candidate]:
    """K-way merge of per-shard streams, each sorted best first, into one stream sorted best first.

    A shard that fails before its first page is left out; one that fails later stops contributing. Both are
    reported in `coverage`.
    """
    buffers: list[list[Hit]] = [[] for _ in streams]
    alive = [True] * len(streams)
    failed = [False] * len(streams)

    async def pull(i: int) -> None:
        try:
            while alive[i] and not buffers[i]:
                page = await anext(streams[i])
                buffers[i] = list(reversed(page))  # pop() from the end = best first
        except StopAsyncIteration:
            alive[i] = False
        except Exception as exc:  # noqa: BLE001 - recorded in coverage
            failed[i] = True
            alive[i] = False
            coverage.failed.append(f"{names[i]}: {short(exc)}")
        coverage.answered = len(streams) - sum(failed)

    await asyncio.gather(*(pull(i) for i in range(len(streams))))
    heap = [(-buffers[i][-1].score, buffers[i][-1].id, i) for i in range(len(streams)) if buffers[i]]
    heapq.heapify(heap)
    try:
        while heap:
            _, _, i = heapq.heappop(heap)
            hit = buffers[i].pop()
            c = Candidate(id=hit.id, text=hit.text, metadata_json=hit.metadata_json, dense_score=hit.score,
                          first_stage_score=hit.score)
            yield c
            if not buffers[i]:
                await pull(i)
            if buffers[i]:
                heapq.heappush(heap, (-buffers[i][-1].score, buffers[i][-1].id, i))
    finally:
        for s in streams:
            aclose = getattr(s, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # noqa: BLE001
                    pass
