"""The gateway's current shard layout: replica sets kept in step with a discovery source; no gRPC here.

A change of replicas within one layout (a replica restarted on a new port, one added or removed) updates that
shard's replica set in place: new replicas are dialled, removed ones finish their in-flight calls first. A new
layout (a reshard: another layout id or another number of shards) is built beside the old one, switched to once
every new shard has a replica that says SERVING (or after `switch_timeout_s`), and the old one is closed only once
the queries that started on it are done. A query reads `current()` once and keeps that layout to the end.

It also tracks, per shard, the newest sequence the shard can serve (from the replicas' Watch streams and from the
gateway's own write acknowledgements): the result cache keys on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from winnow.common import metrics
from winnow.services.gateway.discovery import Topology
from winnow.services.gateway.replicas import ReplicaPolicy, ReplicaPort, ReplicaSet

log = logging.getLogger(__name__)


@dataclass
class ShardLayout:
    """One layout: its id and one replica set per shard (partition p = shards[p])."""

    id: str
    shards: list[ReplicaSet]
    observed: dict[int, int] = field(default_factory=dict)  # partition -> newest sequence the gateway wrote
    users: int = 0  # queries running on this layout (it is closed only once they are done)

    @contextlib.contextmanager
    def use(self):
        """Hold the layout for one query: `with topology.current().use() as layout: ...`."""
        self.users += 1
        try:
            yield self
        finally:
            self.users -= 1

    def seqs(self) -> dict[int, int] | None:
        """Per partition, the newest sequence known to be servable; None if some shard's is unknown."""
        out = {}
        for p, rs in enumerate(self.shards):
            s = rs.known_seq()
            if s is None:
                return None
            out[p] = max(s, self.observed.get(p, 0))
        return out

    def busy(self) -> bool:
        return self.users > 0 or any(r.outstanding for rs in self.shards for r in rs.replicas)

    def serving(self) -> bool:
        """Every shard has a replica whose health says SERVING."""
        return bool(self.shards) and all(any(r.serving for r in rs.replicas) for rs in self.shards)


class ShardTopology:
    def __init__(self, source: AsyncIterator[Topology], dial: Callable[[str], ReplicaPort],
                 policy: ReplicaPolicy | None = None, switch_timeout_s: float = 60.0,
                 retire_grace_s: float = 30.0) -> None:
        self.source = source
        self.dial = dial
        self.policy = policy or ReplicaPolicy()
        self.switch_timeout_s = switch_timeout_s
        self.retire_grace_s = retire_grace_s
        self._layout = ShardLayout("", [])
        self._task: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()
        self.changed = asyncio.Event()  # set after every applied change (tests, ClusterInfo)

    # -- what a query uses ------------------------------------------------------------------------------------

    def current(self) -> ShardLayout:
        return self._layout

    @property
    def shards(self) -> list[ReplicaSet]:
        return self._layout.shards

    def snapshot(self) -> list[tuple[str, int]] | None:
        """The cache key's view: [(layout, 0), (shard, seq), ...], or None when some shard's sequence is unknown."""
        layout = self._layout
        seqs = layout.seqs()
        if seqs is None:
            return None
        return [(f"layout:{layout.id}", 0), *((layout.shards[p].name, s) for p, s in seqs.items())]

    def observe(self, shard: str | int, seq: int) -> None:
        """A sequence from one of this gateway's write acknowledgements (a partition index or a shard name)."""
        layout = self._layout
        p = shard if isinstance(shard, int) else next(
            (i for i, rs in enumerate(layout.shards) if rs.name == shard), None)
        if p is not None:
            layout.observed[p] = max(layout.observed.get(p, 0), seq)

    # -- following the source ---------------------------------------------------------------------------------

    async def start(self, first_within_s: float = 0.0) -> None:
        """Follow the source; optionally wait (bounded) for the first topology to be applied."""
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="shard-topology")
            self._hold(self._publish())
        if first_within_s > 0 and not self._layout.shards:
            try:
                await asyncio.wait_for(self.changed.wait(), first_within_s)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._background) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        await asyncio.gather(*(rs.stop() for rs in self._layout.shards), return_exceptions=True)

    async def _follow(self) -> None:
        async for topo in self.source:
            try:
                await self.apply(topo)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bad update must not stop discovery
                log.exception("could not apply a shard topology")

    async def apply(self, topo: Topology) -> None:
        cur = self._layout
        if cur.shards and cur.id == topo.layout and len(cur.shards) == len(topo.shards):
            for rs, targets in zip(cur.shards, topo.shards):
                self._hold(rs.update(list(targets), self.dial, self.retire_grace_s))
            await asyncio.sleep(0)  # let the updates dial before anyone looks
        else:
            new = ShardLayout(topo.layout, [ReplicaSet(f"shard-{i}", [self.dial(t) for t in targets], self.policy)
                                            for i, targets in enumerate(topo.shards)])
            for rs in new.shards:
                rs.start()
            if cur.shards:
                await self._until_serving(new)
            self._layout = new
            log.info("shard layout switched", extra={"fields": {
                "from": cur.id, "to": new.id, "shards": [list(t) for t in topo.shards]}})
            if cur.shards:
                self._hold(self._retire(cur))
        self.changed.set()
        self.changed = asyncio.Event()

    async def _publish(self, every_s: float = 1.0) -> None:
        """Replica states per shard into `winnow_gateway_replicas` (the picker's view, for dashboards/alerts)."""
        shown: set[str] = set()
        while True:
            names = set()
            for rs in self._layout.shards:
                names.add(rs.name)
                tiers = [r.tier() for r in rs.replicas if not r.removed]
                for state, tier in (("serving", 0), ("unknown", 1), ("out", 2)):
                    metrics.GATEWAY_REPLICAS.labels(rs.name, state).set(tiers.count(tier))
            for gone in shown - names:  # a layout switch removed shards
                for state in ("serving", "unknown", "out"):
                    metrics.GATEWAY_REPLICAS.remove(gone, state)
            shown = names
            await asyncio.sleep(every_s)

    async def _until_serving(self, layout: ShardLayout) -> None:
        end = time.monotonic() + self.switch_timeout_s
        while not layout.serving() and time.monotonic() < end:
            await asyncio.sleep(0.05)  # health streams report SERVING; polling their last value
        if not layout.serving():
            log.warning("switching to a layout with shards not yet SERVING", extra={"fields": {"layout": layout.id}})

    async def _retire(self, layout: ShardLayout) -> None:
        end = time.monotonic() + self.retire_grace_s
        while layout.busy() and time.monotonic() < end:
            await asyncio.sleep(0.05)  # queries that started on the old layout finish on it
        await asyncio.gather(*(rs.stop() for rs in layout.shards), return_exceptions=True)

    def _hold(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


class FixedShards:
    """A fixed list of shard ports as a one-layout topology with no sequence tracking (in-process tests)."""

    def __init__(self, shards: list, layout: str = "L0") -> None:
        self._layout = ShardLayout(layout, list(shards))

    def current(self) -> ShardLayout:
        return self._layout

    @property
    def shards(self) -> list:
        return self._layout.shards

    def snapshot(self) -> None:
        return None  # unknown: callers ask the shards (Stats)

    def observe(self, shard: str | int, seq: int) -> None:
        pass

    async def start(self, first_within_s: float = 0.0) -> None:
        pass

    async def stop(self) -> None:
        pass


def as_topology(shards) -> "ShardTopology | FixedShards":
    """A topology as it is, a plain list of shard ports as a FixedShards."""
    return shards if isinstance(shards, (ShardTopology, FixedShards)) else FixedShards(shards)
