"""Every shard's write generation, known to the gateway without a round trip per search.

Each shard pushes its generation over a `Watch` stream whenever a write lands; the gateway also learns it from
its own writes' acknowledgements before it acknowledges them to the caller. A write through this replica is
therefore seen by its very next search, and a write through another replica as soon as the shard's push arrives
(the same moment its acknowledgement does). While a shard's stream is down its generation is unknown and the
cache key falls back to asking every shard (`Stats`), so the cache is never keyed on a stale generation.
"""

from __future__ import annotations

import asyncio
import logging

from winnow.services.gateway.ports import ShardPort

log = logging.getLogger(__name__)


class GenerationTracker:
    def __init__(self, shards: list[ShardPort], retry_s: float = 1.0) -> None:
        self.shards = shards
        self.retry_s = retry_s
        self._gen: dict[str, int | None] = {s.name: None for s in shards}
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._follow(s), name=f"watch-{s.name}") for s in self.shards]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def observe(self, shard: str, generation: int) -> None:
        """A generation seen in a write acknowledgement; only ever moves forward while the stream is up."""
        cur = self._gen.get(shard)
        if cur is not None and generation > cur:
            self._gen[shard] = generation

    def snapshot(self) -> list[tuple[str, int]] | None:
        """[(shard, generation)] when every shard's generation is known, else None."""
        out = []
        for s in self.shards:
            g = self._gen[s.name]
            if g is None:
                return None
            out.append((s.name, g))
        return out

    async def _follow(self, shard: ShardPort) -> None:
        while True:
            try:
                async for generation in shard.watch():
                    cur = self._gen[shard.name]
                    # Within one stream generations only grow: a late push never moves the key backwards.
                    self._gen[shard.name] = generation if cur is None else max(cur, generation)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - stream down: unknown until it is back
                log.debug("generation stream lost", extra={"fields": {"shard": shard.name, "error": repr(exc)}})
            self._gen[shard.name] = None
            await asyncio.sleep(self.retry_s)
