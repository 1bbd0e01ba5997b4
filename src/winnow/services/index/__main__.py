"""`python -m winnow.services.index [--flags]`: wire settings -> shard + log follower -> gRPC server.

Health stays NOT_SERVING while the replica loads its snapshot and catches up with its log partition (a wiped
replica: rebuilds from the log first); on SIGTERM the server drains, the follower stops, then the shard snapshots
what it applied since the last snapshot.
"""

from __future__ import annotations

import asyncio
import sys

from winnow.core import metrics
from winnow.core.server import GrpcService, run_service, serve_forever
from winnow.log.client import DocumentLog, LogConfig
from winnow.services.index.follower import LogFollower
from winnow.services.index.server import SERVICE, IndexShardServicer
from winnow.services.index.settings import IndexSettings
from winnow.services.index.shard import Shard


def build(settings: IndexSettings) -> tuple[GrpcService, IndexShardServicer]:
    """The service and its servicer, not started; `load` opens the shard, `follow` attaches the log."""
    shard = Shard(settings)
    servicer = IndexShardServicer(shard, settings.search_threads, settings.faiss_omp_threads,
                                  settings.max_consistency_wait_s)
    svc = GrpcService(SERVICE, settings, servicer.register, probe=servicer.probe, long_lived=["Watch"])
    return svc, servicer


async def load(servicer: IndexShardServicer) -> None:
    """Open the shard (newest snapshot) off the event loop, then publish its gauges."""
    shard = servicer.shard
    await asyncio.get_running_loop().run_in_executor(servicer.writer, shard.open)
    stats = shard.stats()
    metrics.INDEX_INFO.labels(stats.shard_id, stats.index_factory, stats.device).set(1)
    servicer.applied()


def follow(servicer: IndexShardServicer, settings: IndexSettings) -> LogFollower:
    """Start following the replica's log partition (replay after the snapshot, then tail)."""
    doc_log = DocumentLog(LogConfig(url=settings.log_url, stream_replicas=settings.log_stream_replicas,
                                    tombstone_ttl_s=settings.tombstone_ttl_s,
                                    client_name=f"winnow-index-{settings.replica_id or settings.shard_id}"))
    follower = LogFollower(servicer.shard, doc_log, layout=settings.layout, partition=settings.partition,
                           replica_id=settings.replica_id or settings.shard_id, executor=servicer.writer,
                           tombstone_ttl_s=settings.tombstone_ttl_s, apply_batch=settings.apply_batch,
                           on_applied=servicer.applied)
    servicer.follower = follower
    follower.start()
    return follower


async def amain(settings: IndexSettings) -> None:
    svc, servicer = build(settings)

    async def warmup() -> None:
        await load(servicer)
        await follow(servicer, settings).wait_caught_up()

    try:
        await serve_forever(svc, warmup=warmup)
    finally:
        if servicer.follower is not None:
            await servicer.follower.stop()
            await servicer.follower.log.close()
        await asyncio.get_running_loop().run_in_executor(servicer.writer, servicer.shard.close)
        servicer.shutdown()


def main(argv: list[str] | None = None) -> int:
    settings = IndexSettings.from_args(sys.argv[1:] if argv is None else argv)
    return run_service(SERVICE, settings, amain)


if __name__ == "__main__":
    sys.exit(main())
