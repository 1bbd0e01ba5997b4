"""`python -m winnow.services.index [--flags]`: wire settings -> shard + log follower -> gRPC server.

Health stays NOT_SERVING while the replica loads its snapshot and catches up with its log partition (a wiped
replica: rebuilds from the log first); on SIGTERM the server drains, the follower stops, then the shard snapshots
what it applied since the last snapshot.
"""

from __future__ import annotations

import asyncio
import sys

from winnow.common import metrics
from winnow.api.internal.index.v1 import index_pb2, index_pb2_grpc
from winnow.log.client import DocumentLog, LogConfig
from winnow.rpc.server import Wiring, service_main, wire
from winnow.services.index.follower import LogFollower
from winnow.services.index.server import SERVICE, IndexShardServicer
from winnow.services.index.settings import IndexSettings
from winnow.services.index.shard import Shard
from winnow.services.index.warmup import warm


def build(settings: IndexSettings) -> Wiring:
    """The service and its shard, not started; `warmup` loads the shard and catches up with the log, `close`
    stops following, snapshots and closes; `wiring.servicer` is the gRPC servicer (tests reach the follower)."""
    metrics.set_shard(settings.shard_id)  # every RPC metric of this process carries shard=<id>
    servicer = IndexShardServicer(Shard(settings.shard_config()), settings.search_threads,
                                  settings.faiss_omp_threads, settings.max_consistency_wait_s,
                                  settings.inline_search_ms)
    servicer.follower = follower(servicer, settings)
    wiring = wire(SERVICE, settings, servicer.shard, servicer, index_pb2_grpc.add_IndexShardServicer_to_server,
                  index_pb2.DESCRIPTOR.services_by_name["IndexShard"], probe=servicer.probe,
                  warmup=lambda: warmup(servicer), close=lambda: close(servicer), long_lived=["Watch"])
    wiring.servicer = servicer  # type: ignore[attr-defined] - tests reach the follower through it
    return wiring


def follower(servicer: IndexShardServicer, settings: IndexSettings) -> LogFollower:
    """The replica's follower of its log partition (not started)."""
    doc_log = DocumentLog(LogConfig(url=settings.log_url, stream_replicas=settings.log_stream_replicas,
                                    tombstone_ttl_s=settings.tombstone_ttl_s,
                                    client_name=f"winnow-index-{settings.replica_id or settings.shard_id}"))
    return LogFollower(servicer.shard, doc_log, layout=settings.layout, partition=settings.partition,
                       replica_id=settings.replica_id or settings.shard_id, executor=servicer.writer,
                       tombstone_ttl_s=settings.tombstone_ttl_s, apply_batch=settings.apply_batch,
                       on_applied=servicer.applied)


async def warmup(servicer: IndexShardServicer) -> None:
    """Open the shard (newest snapshot) off the event loop, follow the log until caught up, then warm it (BM25
    built, index walked) on the search threads: health says SERVING only after all of it."""
    shard = servicer.shard
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(servicer.writer, shard.open)
    stats = shard.stats()
    metrics.INDEX_INFO.labels(stats.shard_id, stats.index_factory, stats.device).set(1)
    servicer.applied()
    servicer.follower.start()
    await servicer.follower.wait_caught_up()
    await loop.run_in_executor(servicer.readers, warm, shard)


async def close(servicer: IndexShardServicer) -> None:
    """Stop following, snapshot what was applied since the last snapshot, then stop the executors."""
    await servicer.follower.stop()
    await servicer.follower.log.close()
    await asyncio.get_running_loop().run_in_executor(servicer.writer, servicer.shard.close)
    servicer.shutdown()


main = service_main(SERVICE, IndexSettings, build)

if __name__ == "__main__":
    sys.exit(main())
