"""Writes through the gateway: embed in batches, route each id to its partition, append to the document log and
acknowledge only once JetStream acknowledged every message. The answer carries a write token (the partitions'
sequences). A write that reached only part of the log fails with a message saying exactly how much was written.
Writes go to the layout searches use now (`topology.current()`), so a reshard's switch moves them too."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from winnow.common import metrics
from winnow.common.deadline import Deadline
from winnow.common.errors import Unavailable, short
from winnow.log import codec
from winnow.log.client import AppendResult, Message
from winnow.services.gateway import routing
from winnow.services.gateway.consistency import encode_token
from winnow.services.gateway.model import Candidate, WriteDocument
from winnow.services.gateway.ports import EmbedderPort, ShardPort
from winnow.services.gateway.topology import FixedShards, ShardTopology, as_topology


class LogPort(Protocol):
    async def append(self, layout: str, partition: int, messages: list[Message], timeout: float) -> AppendResult:
        """Publish to one partition; returns how many JetStream acknowledged (never raises for the log)."""


@dataclass
class WriteConfig:
    embed_batch_size: int = 64
    embed_concurrency: int = 4


class WriteCore:
    def __init__(self, embedder: EmbedderPort, shards: list[ShardPort] | ShardTopology | FixedShards,
                 config: WriteConfig | None = None, log: LogPort | None = None) -> None:
        self.embedder = embedder
        self.topology = as_topology(shards)
        self.config = config or WriteConfig()
        self.log = log

    @property
    def shards(self) -> list[ShardPort]:
        return self.topology.shards

    async def upsert(self, docs: list[WriteDocument], deadline: Deadline) -> tuple[int, dict[str, float], str]:
        """(documents written, timings, write token); the batch was validated whole by the caller."""
        timings: dict[str, float] = {}
        t = time.perf_counter()
        size = self.config.embed_batch_size
        sem = asyncio.Semaphore(self.config.embed_concurrency)

        async def embed(chunk: list[WriteDocument]):
            async with sem:
                return await self.embedder.embed([d.text for d in chunk], query=False,
                                                 timeout=deadline.timeout(fraction=0.8))

        to_embed = [d for d in docs if d.vector is None]  # documents with the caller's vector skip the embedder
        chunks = [to_embed[i:i + size] for i in range(0, len(to_embed), size)]
        made = iter([row for block in await asyncio.gather(*(embed(c) for c in chunks)) for row in block])
        if to_embed:
            timings["embed"] = (time.perf_counter() - t) * 1000
        messages = [Message(d.id, codec.encode_upsert(d.id, d.vector if d.vector is not None else next(made), d.text,
                                                      d.metadata_json)) for d in docs]
        t = time.perf_counter()
        written, token = await self._append([d.id for d in docs], messages, deadline, "upserted")
        timings["log"] = (time.perf_counter() - t) * 1000
        return written, timings, token

    async def delete(self, ids: list[str], deadline: Deadline) -> tuple[int, dict[str, float], str]:
        """(ids whose tombstone the log acknowledged, timings, write token)."""
        t = time.perf_counter()
        messages = [Message(i, codec.encode_delete(i), tombstone=True) for i in ids]
        deleted, token = await self._append(ids, messages, deadline, "deleted")
        return deleted, {"log": (time.perf_counter() - t) * 1000}, token

    async def _append(self, ids: list[str], messages: list[Message], deadline: Deadline,
                      verb: str) -> tuple[int, str]:
        if self.log is None:
            raise Unavailable("this gateway has no document log configured (log_url); writes are disabled")
        layout = self.topology.current()
        if not layout.shards:
            raise Unavailable("no shard layout is known yet (discovery has not answered); nothing was written")
        groups = routing.group_by_shard(ids, len(layout.shards))
        timeout = deadline.timeout(fraction=0.9) or 10.0
        results = await asyncio.gather(*(
            self.log.append(layout.id, p, [messages[i] for i in pos], timeout) for p, pos in groups.items()))
        written = sum(r.acked for r in results)
        metrics.WRITES_LOGGED.labels("acked").inc(written)
        for r in results:
            if r.acked:
                self.topology.observe(r.partition, r.last_seq)  # the next search's cache key is at least this fresh
        failed = [r for r in results if not r.complete]
        if failed:
            metrics.WRITES_LOGGED.labels("failed").inc(len(ids) - written)
            raise Unavailable(_partial_message(verb, written, len(ids), failed))
        return written, encode_token(layout.id, {r.partition: r.last_seq for r in results})

    async def get(self, ids: list[str], deadline: Deadline) -> tuple[list[Candidate], list[str]]:
        groups = routing.group_by_shard(ids, len(self.shards))
        results = await asyncio.gather(
            *(self.shards[i].get([ids[p] for p in pos], deadline.timeout()) for i, pos in groups.items()),
            return_exceptions=True,
        )
        found: dict[str, Candidate] = {}
        missing: list[str] = []
        for (i, _), res in zip(groups.items(), results):
            if isinstance(res, BaseException):
                raise Unavailable(f"{self.shards[i].name} could not be read: {short(res)}")
            hits, miss = res
            found.update({h.id: Candidate(id=h.id, text=h.text, metadata_json=h.metadata_json) for h in hits})
            missing.extend(miss)
        return [found[i] for i in ids if i in found], missing


def _partial_message(verb: str, done: int, total: int, failed: list[AppendResult]) -> str:
    detail = "; ".join(f"partition {r.partition}: {r.acked} of {r.total} ({r.error})" for r in failed)
    if done == 0:
        return f"nothing was {verb}: {detail}. Retry the whole request."
    return (f"only {done} of {total} documents were {verb} (acknowledged by the document log); {detail}. "
            f"Writes are idempotent: retry the whole request.")
