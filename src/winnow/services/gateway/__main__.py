"""`python -m winnow.services.gateway [--flags]`: wire settings -> clients -> cores -> gRPC server."""

from __future__ import annotations

import asyncio
import sys

from winnow.api.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from winnow.common.deadline import Deadline
from winnow.log.client import DocumentLog, LogConfig
from winnow.log.feedback import FeedbackLog
from winnow.common import metrics
from winnow.rpc.server import Wiring, service_main, wire
from winnow.rpc.tls import PLAINTEXT, ChannelSecurity, channel_security
from winnow.services.gateway import convert_search
from winnow.services.gateway.cache import make_cache
from winnow.services.gateway.clients import GrpcEmbedder, GrpcReranker, GrpcShard
from winnow.services.gateway.feedback import FeedbackCore
from winnow.services.gateway.discovery import Topology, dns_source, parse_shards, registry_source, static_source
from winnow.services.gateway.ltr import LtrStage
from winnow.services.gateway.model import SearchOptions
from winnow.services.gateway.replicas import ReplicaPolicy
from winnow.services.gateway.search import PipelineConfig, SearchCore
from winnow.services.gateway.server import GatewayServicer, admission_classes
from winnow.services.gateway.settings import GatewaySettings
from winnow.services.gateway.topology import ShardTopology
from winnow.services.gateway.writes import WriteConfig, WriteCore


def internal_security(s: GatewaySettings) -> ChannelSecurity:
    """TLS, client certificate and the gateway's own token for its calls to the internal services."""
    return channel_security(s.internal_tls_ca_file, s.internal_tls_cert_file, s.internal_tls_key_file,
                            s.internal_token.get_secret_value(), s.internal_tls_server_name)


def shard_topology(s: GatewaySettings, security: ChannelSecurity = PLAINTEXT) -> ShardTopology:
    """Replica sets fed by the configured discovery: the registry file, DNS, or the static list."""
    if s.shard_registry:
        source = registry_source(s.shard_registry, s.registry_poll_s)
    elif s.shard_dns:
        source = dns_source(s.shards, s.layout, s.discovery_interval_s)
    else:
        source = static_source(Topology(s.layout, parse_shards(s.shards)))
    policy = ReplicaPolicy(hedge_after_s=s.hedge_after_ms / 1000.0, eject_base_s=s.replica_eject_s,
                           eject_max_s=s.replica_eject_max_s)
    return ShardTopology(source, lambda target: GrpcShard("replica", target, s.replica_reconnect_max_ms, security),
                         policy, switch_timeout_s=s.layout_switch_timeout_s)

SERVICE = "gateway"


async def build(s: GatewaySettings) -> Wiring:
    """Everything but the event loop: used by __main__ and by in-process tests. The core is the SearchCore."""
    ltr = LtrStage.load(s.ltr_model) if s.ltr_model else None  # LtrModelError: the gateway refuses to start
    cache = await make_cache(s.cache, s.redis_url.get_secret_value(), s.cache_ttl_s)
    security = internal_security(s)
    embedder = GrpcEmbedder(s.embedder, security)
    reranker = GrpcReranker(s.reranker, security) if s.reranker else None
    topology = shard_topology(s, security)
    metrics.init_gateway([])  # cache and rerank-fallback counters at 0; shards get theirs when first asked
    search = SearchCore(embedder, topology, reranker, cache, PipelineConfig(
        rerank_batch_size=s.rerank_batch_size, dense_weight=s.dense_weight, collection_model=s.collection_model,
        payloads=s.payloads), encode=convert_search.search_result_to_bytes, ltr=ltr)
    doc_log = DocumentLog(LogConfig(url=s.log_url, stream_replicas=s.log_stream_replicas,
                                    tombstone_ttl_s=s.tombstone_ttl_s, connect_timeout_s=s.log_connect_timeout_s,
                                    client_name="winnow-gateway"))
    writes = WriteCore(embedder, topology, WriteConfig(embed_batch_size=s.embed_batch_size), log=doc_log)

    async def probe() -> bool | str:
        # Serving needs at least one shard. A missing embedder (hybrid falls back to BM25, flagged), reranker
        # (first-stage order, flagged) or some shards (partial coverage, reported) only degrade answers, so they
        # must not take the gateway out of rotation.
        await search.refresh_models()
        stats = await asyncio.gather(*(sh.stats(1.0) for sh in topology.shards), return_exceptions=True)
        return any(not isinstance(x, BaseException) for x in stats) or "no shard answers Stats"

    feedback = FeedbackCore(FeedbackLog(doc_log))  # its own stream, the document log's connection
    servicer = GatewayServicer(search, writes, s, feedback)

    async def close() -> None:
        """After the server drained: the log connection (flushing what it holds), discovery and the replicas'
        streams, the model channels, the cache. Each step is bounded and a failure does not skip the rest."""
        steps = [doc_log.close(), topology.stop(), embedder.close(), cache.close()]
        if reranker is not None:
            steps.append(reranker.close())
        await asyncio.gather(*steps, return_exceptions=True)

    wiring = wire(SERVICE, s, search, servicer, gateway_pb2_grpc.add_GatewayServicer_to_server,
                  gateway_pb2.DESCRIPTOR.services_by_name["Gateway"], probe=probe,
                  warmup=lambda: wait_for_dependencies(search, s.embedder_wait_s), close=close,
                  classify=admission_classes(s))
    wiring.servicer = servicer  # type: ignore[attr-defined] - tests reach the write core through it
    return wiring


async def wait_for_dependencies(search: SearchCore, wait_s: float = 30.0) -> None:
    """Follow discovery and the replicas; bounded wait for the embedder so cache keys carry its model version
    (past it the gateway serves anyway: hybrid searches fall back to BM25, flagged); then warm the search path
    (channels, every stage's code) before this gateway reports ready."""
    await search.topology.start(first_within_s=10.0)
    end = asyncio.get_running_loop().time() + wait_s
    while not await search.refresh_models(timeout=1.0):
        if asyncio.get_running_loop().time() >= end:
            return
        await asyncio.sleep(0.2)
    if search.ltr is not None:
        search.ltr.check_reranker(search.models["reranker"])
    await warm_up(search)


async def warm_up(search: SearchCore, searches: int = 6) -> None:
    """Uncached searches through the whole pipeline (embed, every shard, fusion, rerank), so the first real ones
    find the channels connected and the code paths warm. Failures only mean a dependency is still coming up."""
    texts = ["aspirin and the heart", "vitamin d deficiency in older adults", "statins lower cholesterol",
             "gene expression in cancer cells", "effect of exercise on blood pressure", "viral infection immunity"]
    for i in range(searches):
        try:
            await search.search(SearchOptions(query=texts[i % len(texts)], k=10, no_cache=True), Deadline(10.0))
        except Exception:  # noqa: BLE001 - warm-up is best effort; readiness is the probe's call
            return


main = service_main(SERVICE, GatewaySettings, build)

if __name__ == "__main__":
    sys.exit(main())
