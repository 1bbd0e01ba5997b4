"""`winnow reshard --shards M` on the local cluster: a new layout filled from the log while the old one serves,
then the switch, then the old one retired. No document is embedded again (the log carries the vectors).

1. New layout id (L0 -> L1); its M partition streams are created and a `Repartitioner` copies every message of
   the old partitions into them (same jump hash, over M) and keeps tailing the old partitions.
2. R replicas per new shard start and follow the new partitions; they report SERVING once caught up.
3. Once the copier has caught up and every new replica applied its partition's head, `registry.json` names the
   new layout: the gateway builds it beside the old one and switches when every new shard is SERVING (queries that
   started on the old layout finish there), and from then on writes go to the new layout.
4. The copier goes on until the old partitions have been quiet for `quiet_s` (writes acknowledged on the old
   layout just before a gateway switched are carried over), then stops; the old replicas stop and the old
   streams are deleted; `layout.json` records the new layout.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Coroutine
from typing import Any

from winnow.cluster.launcher import ClusterError, LocalCluster
from winnow.log.client import DocumentLog, LogConfig
from winnow.log.repartition import Repartitioner

log = logging.getLogger(__name__)


def next_layout(layout: str) -> str:
    m = re.fullmatch(r"(.*?)(\d+)", layout)
    return f"{m.group(1)}{int(m.group(2)) + 1}" if m else f"{layout}-1"


class _Loop:
    """An event loop on its own thread, so the (synchronous) launcher can drive the asynchronous copier."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="reshard-loop")
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def reshard(cluster: LocalCluster, shards: int, *, catchup_timeout_s: float = 1800.0, quiet_s: float = 2.0,
            switch_timeout_s: float = 120.0, tombstone_ttl_s: float = 7 * 24 * 3600) -> str:
    """Move `cluster` to a layout of `shards` shards under load; returns the new layout id."""
    if shards < 1:
        raise ClusterError("--shards must be at least 1")
    old_layout, old_n = cluster.layout, cluster.shards
    new_layout = next_layout(old_layout)
    loop = _Loop()
    doc_log = DocumentLog(LogConfig(url=cluster.log_url, client_name="winnow-reshard"))
    copier = Repartitioner(doc_log, old_layout, old_n, new_layout, shards, tombstone_ttl_s)
    old_replicas = [n for n, p in cluster.procs.items() if p.kind == "index" and p.layout == old_layout]
    switched = False
    try:
        t0 = time.monotonic()
        loop.run(copier.start())
        new = [cluster.spawn_replica(i, r, new_layout) for i in range(shards) for r in range(cluster.config.replicas)]
        loop.run(copier.wait_caught_up(catchup_timeout_s))
        cluster._wait(new)  # noqa: SLF001 - each is SERVING once caught up with its partition
        heads = {q: loop.run(doc_log.head(new_layout, q)).last_seq for q in range(shards)}
        for p in new:
            _wait_applied(p.address, heads[p.shard], catchup_timeout_s)
        filled = time.monotonic() - t0
        log.warning("new layout caught up; switching", extra={"fields": {
            "layout": new_layout, "shards": shards, "copied": copier.progress.copied, "s": round(filled, 1)}})

        cluster.layout, cluster.shards = new_layout, shards
        switched = True
        cluster.write_registry()
        if "gateway" in cluster.procs:
            _wait_gateway_layout(cluster.procs["gateway"].address, new_layout, switch_timeout_s)
        loop.run(_quiet(doc_log, old_layout, old_n, quiet_s))
        loop.run(copier.wait_caught_up(catchup_timeout_s))
        loop.run(copier.stop())

        cluster.stop(grace=10.0, names=old_replicas)
        for name in old_replicas:
            del cluster.procs[name]
        for p in range(old_n):
            loop.run(doc_log.delete_stream(old_layout, p))
        cluster._save_layout()  # noqa: SLF001
        cluster.write_registry()
        if "gateway" in cluster.procs:
            cluster._write_state()  # noqa: SLF001
        log.warning("reshard done", extra={"fields": {"layout": new_layout, "copied": copier.progress.copied,
                                                      "skipped_newer": copier.progress.skipped_newer}})
        return new_layout
    except BaseException:
        if not switched:
            _roll_back(cluster, loop, copier, doc_log, new_layout, shards)
        elif "gateway" in cluster.procs:
            cluster._write_state()  # noqa: SLF001 - both layouts' processes stay findable (`winnow down`)
        raise
    finally:
        try:
            loop.run(copier.stop(), timeout=10)
            loop.run(doc_log.close(), timeout=10)
        finally:
            loop.close()


def _roll_back(cluster: LocalCluster, loop: _Loop, copier: Repartitioner, doc_log: DocumentLog, layout: str,
               shards: int) -> None:
    """A reshard that failed before the switch leaves what it found: the new layout's replicas are stopped (never
    orphaned) and its streams deleted (a retry's copies expect no earlier copy: with leftovers JetStream would refuse
    them as newer direct writes, and versions written since would never reach the new layout)."""
    spawned = [n for n, p in cluster.procs.items() if p.kind == "index" and p.layout == layout]
    log.warning("reshard failed before the switch; removing the new layout",
                extra={"fields": {"layout": layout, "replicas": spawned}})
    try:
        cluster.stop(grace=5.0, names=spawned)
    finally:
        for name in spawned:
            del cluster.procs[name]
        try:
            loop.run(copier.stop(), timeout=10)
            for q in range(shards):
                loop.run(doc_log.delete_stream(layout, q), timeout=10)
        except Exception as exc:  # noqa: BLE001 - the original failure is the one to report
            log.warning("could not delete the new layout's streams: %s", exc, extra={"fields": {"layout": layout}})


async def _quiet(doc_log: DocumentLog, layout: str, partitions: int, quiet_s: float) -> None:
    """Until no old partition has taken a message for `quiet_s` seconds."""
    last = None
    since = time.monotonic()
    while True:
        heads = [(await doc_log.head(layout, p)).last_seq for p in range(partitions)]
        if heads != last:
            last, since = heads, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        await asyncio.sleep(0.1)


def _wait_applied(address: str, seq: int, timeout: float) -> None:
    import grpc

    from winnow.api.internal.index.v1 import index_pb2 as pb
    from winnow.api.internal.index.v1 import index_pb2_grpc as pbg

    end = time.monotonic() + timeout
    with grpc.insecure_channel(address) as ch:
        stub = pbg.IndexShardStub(ch)
        while stub.Stats(pb.StatsRequest(), timeout=10).applied_seq < seq:
            if time.monotonic() > end:
                raise ClusterError(f"replica {address} did not reach seq {seq} within {timeout}s")
            time.sleep(0.05)


def _wait_gateway_layout(address: str, layout: str, timeout: float) -> None:
    from winnow.client import WinnowClient

    end = time.monotonic() + timeout
    with WinnowClient(address, timeout=5) as client:
        while client.info().layout != layout:
            if time.monotonic() > end:
                raise ClusterError(f"the gateway did not switch to layout {layout} within {timeout}s")
            time.sleep(0.1)
