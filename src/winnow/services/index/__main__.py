"""`python -m winnow.services.index [--flags]`: wire settings -> shard -> gRPC server, serve until SIGTERM.

Health stays NOT_SERVING while the shard loads its snapshot and replays its log; on SIGTERM the server drains,
then the shard snapshots pending writes and closes its log.
"""

from __future__ import annotations

import asyncio
import sys

from winnow.common import metrics
from winnow.api.internal.index.v1 import index_pb2, index_pb2_grpc
from winnow.rpc.server import Wiring, service_main, wire
from winnow.services.index.server import SERVICE, IndexShardServicer
from winnow.services.index.settings import IndexSettings
from winnow.services.index.shard import Shard
from winnow.services.index.warmup import warm


def build(settings: IndexSettings) -> Wiring:
    """The service and its shard, not started; `warmup` loads the shard, `close` snapshots and closes it."""
    servicer = IndexShardServicer(Shard(settings.shard_config()), settings.search_threads,
                                  settings.faiss_omp_threads)
    return wire(SERVICE, settings, servicer.shard, servicer, index_pb2_grpc.add_IndexShardServicer_to_server,
                index_pb2.DESCRIPTOR.services_by_name["IndexShard"], probe=servicer.probe,
                warmup=lambda: load(servicer), close=lambda: close(servicer), long_lived=["Watch"])


async def load(servicer: IndexShardServicer) -> None:
    """Open the shard (snapshot + log replay) off the event loop, warm it (BM25 built, index walked) on the
    search threads, then publish its gauges. Health says SERVING only after all of it."""
    shard = servicer.shard
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(servicer.writer, shard.open)
    await loop.run_in_executor(servicer.readers, warm, shard)
    stats = shard.stats()
    metrics.INDEX_INFO.labels(stats.shard_id, stats.index_factory, stats.device).set(1)
    servicer._gauges(stats.generation)


async def close(servicer: IndexShardServicer) -> None:
    """Snapshot pending writes and close the log on the writer thread, then stop the executors."""
    await asyncio.get_running_loop().run_in_executor(servicer.writer, servicer.shard.close)
    servicer.shutdown()


main = service_main(SERVICE, IndexSettings, build)

if __name__ == "__main__":
    sys.exit(main())
