"""A replica follows its log partition: replay after the snapshot's sequence, then tail, forever.

Start-up: the shard has loaded its newest snapshot (generation = the sequence it had applied). The follower checks
that the snapshot belongs to this log (same stream, not ahead of it, younger than the tombstone lifetime — an older
one may have missed a delete whose tombstone has expired) and otherwise resets the replica to empty, then reads the
partition from generation + 1. `caught_up` turns true the first time everything JetStream had delivered is applied
and nothing is pending; readiness waits on it, so a wiped replica reports SERVING only once rebuilt. When the log
goes away the replica keeps serving what it has and reconnects in the background.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor

from winnow.log import names
from winnow.log.client import DocumentLog, PartitionReader
from winnow.services.index.model import ReplicaStatus
from winnow.services.index.shard import Shard

log = logging.getLogger(__name__)


class LogFollower:
    def __init__(self, shard: Shard, doc_log: DocumentLog, *, layout: str, partition: int, replica_id: str,
                 executor: Executor, tombstone_ttl_s: float, apply_batch: int = 1024,
                 on_applied: Callable[[], None] = lambda: None) -> None:
        self.shard = shard
        self.log = doc_log
        self.layout = layout
        self.partition = partition
        self.replica_id = replica_id
        self.executor = executor
        self.tombstone_ttl_s = tombstone_ttl_s
        self.apply_batch = apply_batch
        self.on_applied = on_applied
        self.caught_up = False
        self.lag = -1
        self._caught_up = asyncio.Event()
        self._applied = asyncio.Event()  # set (and replaced) after every applied batch
        self._task: asyncio.Task | None = None
        self.rebuilds = 0
        self._checked = False

    def status(self) -> ReplicaStatus:
        return ReplicaStatus(self.partition, self.replica_id, self.layout, self.caught_up, max(self.lag, 0),
                             self.log.connected)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"follow-{self.partition}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping
                pass
            self._task = None

    async def wait_caught_up(self) -> None:
        await self._caught_up.wait()

    async def wait_applied(self, seq: int, timeout: float) -> bool:
        """True once the replica applied `seq`; False after `timeout` seconds without it."""
        end = time.monotonic() + timeout
        while self.shard.generation < seq:
            left = end - time.monotonic()
            if left <= 0:
                return False
            applied = self._applied
            try:
                await asyncio.wait_for(applied.wait(), left)
            except asyncio.TimeoutError:
                return self.shard.generation >= seq
        return True

    async def _run(self) -> None:
        backoff = 0.1
        reader: PartitionReader | None = None
        while True:
            try:
                await self._check_snapshot()
                reader = self.log.reader(self.layout, self.partition)
                await reader.open(self.shard.generation)
                await self._check_caught_up(reader)
                backoff = 0.1
                while True:
                    records = await reader.batch(self.apply_batch, wait_s=0.5)
                    if records:
                        await asyncio.get_running_loop().run_in_executor(self.executor, self.shard.apply, records)
                        self._notify()
                    if not records or reader.lag == 0:
                        await self._check_caught_up(reader)
            except asyncio.CancelledError:
                if reader is not None:
                    await reader.close()
                raise
            except Exception as exc:  # noqa: BLE001 - the log being away is normal; keep serving, retry
                log.warning("log follower: %s; retrying in %.1fs", exc.__class__.__name__, backoff,
                            extra={"fields": {"partition": self.partition, "error": str(exc)[:200]}})
                if reader is not None:
                    await reader.close()
                    reader = None
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)

    def _notify(self) -> None:
        applied, self._applied = self._applied, asyncio.Event()
        applied.set()
        self.on_applied()

    async def _check_caught_up(self, reader: PartitionReader) -> None:
        """Caught up = the server has nothing pending for us and we applied all it delivered."""
        info = await reader._sub.consumer_info()  # noqa: SLF001 - the reader owns the subscription; one call
        delivered = int(info.delivered.stream_seq or 0) if info.delivered else 0
        pending = int(info.num_pending or 0) + reader._sub.pending_msgs  # noqa: SLF001
        self.lag = pending + max(0, delivered - self.shard.generation)
        if self.lag == 0 and not self.caught_up:
            self.caught_up = True
            self._caught_up.set()
            log.info("replica caught up with its log partition", extra={"fields": {
                "partition": self.partition, "replica": self.replica_id, "applied_seq": self.shard.generation,
                "documents": self.shard.state.count}})

    async def _check_snapshot(self) -> None:
        """Reset the replica when its snapshot cannot be continued from this log."""
        head = await self.log.head(self.layout, self.partition)
        stream = names.stream(self.layout, self.partition)
        meta = self.shard.snapshot_log
        reason = ""
        if self.shard.generation > head.last_seq:
            reason = f"snapshot at seq {self.shard.generation} is ahead of the log (last seq {head.last_seq})"
        elif not self._checked and meta.get("stream") and meta["stream"] != stream:
            reason = f"snapshot belongs to {meta['stream']}, not {stream}"
        elif (not self._checked and self.shard.generation
              and time.time() - float(meta.get("written_at", 0)) > self.tombstone_ttl_s):
            reason = "snapshot is older than the tombstone lifetime (it may have missed deletes)"
        if reason:
            log.warning("discarding the snapshot: %s", reason, extra={"fields": {"partition": self.partition}})
            await asyncio.get_running_loop().run_in_executor(self.executor, self.shard.reset)
            self.rebuilds += 1
        self.shard.log_meta = {"stream": stream, "layout": self.layout, "partition": self.partition}
        self._checked = True  # stream and age are checked once; later reconnects continue from memory
