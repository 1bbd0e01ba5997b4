"""`python -m winnow.services.index [--flags]`: wire settings -> shard -> gRPC server, serve until SIGTERM.

Health stays NOT_SERVING while the shard loads its snapshot and replays its log; on SIGTERM the server drains,
then the shard snapshots pending writes and closes its log.
"""

from __future__ import annotations

import asyncio
import sys

from winnow.common import metrics
from winnow.rpc.server import GrpcService, Wiring, serve
from winnow.services.index.server import SERVICE, IndexShardServicer
from winnow.services.index.settings import IndexSettings
from winnow.services.index.shard import Shard


def build(settings: IndexSettings) -> Wiring:
    """The service and its shard, not started; `warmup` loads the shard, `close` snapshots and closes it."""
    servicer = IndexShardServicer(Shard(settings.shard_config()), settings.search_threads,
                                  settings.faiss_omp_threads)
    svc = GrpcService(SERVICE, settings, servicer.register, probe=servicer.probe, long_lived=["Watch"])
    return Wiring(svc, servicer.shard, lambda: load(servicer), lambda: close(servicer))


async def load(servicer: IndexShardServicer) -> None:
    """Open the shard (snapshot + log replay) off the event loop, then publish its gauges."""
    shard = servicer.shard
    await asyncio.get_running_loop().run_in_executor(servicer.writer, shard.open)
    stats = shard.stats()
    metrics.INDEX_INFO.labels(stats.shard_id, stats.index_factory, stats.device).set(1)
    servicer._gauges(stats.generation)


async def close(servicer: IndexShardServicer) -> None:
    """Snapshot pending writes and close the log on the writer thread, then stop the executors."""
    await asyncio.get_running_loop().run_in_executor(servicer.writer, servicer.shard.close)
    servicer.shutdown()


def main(argv: list[str] | None = None) -> int:
    return serve(SERVICE, IndexSettings, build, argv)


if __name__ == "__main__":
    sys.exit(main())
