"""`python -m winnow.services.index [--flags]`: wire settings -> shard -> gRPC server, serve until SIGTERM.

Health stays NOT_SERVING while the shard loads its snapshot and replays its log; on SIGTERM the server drains,
then the shard snapshots pending writes and closes its log.
"""

from __future__ import annotations

import asyncio
import sys

from winnow.core import metrics
from winnow.core.server import GrpcService, run_service, serve_forever
from winnow.services.index.server import SERVICE, IndexShardServicer
from winnow.services.index.settings import IndexSettings
from winnow.services.index.shard import Shard


def build(settings: IndexSettings) -> tuple[GrpcService, IndexShardServicer]:
    """The service and its servicer, not started; `warmup` of the returned service loads the shard."""
    metrics.set_shard(settings.shard_id)  # every RPC metric of this process carries shard=<id>
    shard = Shard(settings)
    servicer = IndexShardServicer(shard, settings.search_threads, settings.faiss_omp_threads)
    svc = GrpcService(SERVICE, settings, servicer.register, probe=servicer.probe, long_lived=["Watch"])
    return svc, servicer


async def load(servicer: IndexShardServicer) -> None:
    """Open the shard (snapshot + log replay) off the event loop, then publish its gauges."""
    shard = servicer.shard
    await asyncio.get_running_loop().run_in_executor(servicer.writer, shard.open)
    stats = shard.stats()
    metrics.INDEX_INFO.labels(stats.shard_id, stats.index_factory, stats.device).set(1)
    servicer._gauges(stats.generation)


async def amain(settings: IndexSettings) -> None:
    svc, servicer = build(settings)
    try:
        await serve_forever(svc, warmup=lambda: load(servicer))
    finally:
        await asyncio.get_running_loop().run_in_executor(servicer.writer, servicer.shard.close)
        servicer.shutdown()


def main(argv: list[str] | None = None) -> int:
    settings = IndexSettings.from_args(sys.argv[1:] if argv is None else argv)
    return run_service(SERVICE, settings, amain)


if __name__ == "__main__":
    sys.exit(main())
