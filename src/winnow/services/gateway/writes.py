"""Writes through the gateway: embed in batches, route each id to its shard, acknowledge only what shards
acknowledged. A write that reached only some shards fails with a message saying exactly what was written."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from winnow.common.deadline import Deadline
from winnow.common.errors import Unavailable, short
from winnow.services.gateway import routing
from winnow.services.gateway.topology import FixedShards, ShardTopology, as_topology
from winnow.services.gateway.model import Candidate, WriteDocument
from winnow.services.gateway.ports import EmbedderPort, ShardPort, WriteRecord


@dataclass
class WriteConfig:
    embed_batch_size: int = 64
    embed_concurrency: int = 4
    shard_batch_size: int = 256


class WriteCore:
    def __init__(self, embedder: EmbedderPort, shards: list[ShardPort] | ShardTopology | FixedShards,
                 config: WriteConfig | None = None) -> None:
        self.embedder = embedder
        self.topology = as_topology(shards)
        self.config = config or WriteConfig()

    @property
    def shards(self) -> list[ShardPort]:
        return self.topology.shards

    async def upsert(self, docs: list[WriteDocument], deadline: Deadline) -> tuple[int, dict[str, float]]:
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
        records = [WriteRecord(d.id, d.vector if d.vector is not None else next(made), d.text, d.metadata_json)
                   for d in docs]
        t = time.perf_counter()
        groups = routing.group_by_shard([d.id for d in docs], len(self.shards))

        async def write(shard_idx: int, positions: list[int]) -> int:
            done = 0
            shard = self.shards[shard_idx]
            step = self.config.shard_batch_size
            for i in range(0, len(positions), step):
                part = [records[p] for p in positions[i:i + step]]
                try:
                    generation = await shard.upsert(part, deadline.timeout(fraction=0.9))
                except Exception as exc:
                    raise _ShardWriteError(shard.name, done, exc) from exc
                self._observe(shard.name, generation)
                done += len(part)
            return done

        results = await asyncio.gather(*(write(i, pos) for i, pos in groups.items()), return_exceptions=True)
        timings["write"] = (time.perf_counter() - t) * 1000
        written = sum(r if isinstance(r, int) else r.done for r in results if isinstance(r, (int, _ShardWriteError)))
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise Unavailable(_partial_message("upserted", written, len(docs), failures))
        return written, timings

    async def delete(self, ids: list[str], deadline: Deadline) -> tuple[int, dict[str, float]]:
        t = time.perf_counter()
        groups = routing.group_by_shard(ids, len(self.shards))

        async def remove(shard_idx: int, positions: list[int]) -> int:
            shard = self.shards[shard_idx]
            try:
                deleted, generation = await shard.delete([ids[p] for p in positions], deadline.timeout(fraction=0.9))
            except Exception as exc:
                raise _ShardWriteError(shard.name, 0, exc) from exc
            self._observe(shard.name, generation)
            return deleted

        results = await asyncio.gather(*(remove(i, pos) for i, pos in groups.items()), return_exceptions=True)
        deleted = sum(r for r in results if isinstance(r, int))
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise Unavailable(_partial_message("deleted", deleted, len(ids), failures))
        return deleted, {"write": (time.perf_counter() - t) * 1000}

    def _observe(self, shard: str, generation: int) -> None:
        self.topology.observe(shard, generation)  # the next search's cache key is at least this fresh

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


class _ShardWriteError(Exception):
    def __init__(self, shard: str, done: int, cause: BaseException) -> None:
        super().__init__(f"{shard}: {short(cause)}")
        self.shard = shard
        self.done = done


def _partial_message(verb: str, done: int, total: int, failures: list[BaseException]) -> str:
    detail = "; ".join(str(f) for f in failures)
    return (f"only {done} of {total} documents were {verb} (acknowledged by their shards); failed: {detail}. "
            f"Writes are idempotent: retry the whole request.")
