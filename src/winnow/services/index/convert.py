"""Proto <-> domain for the index shard. Shape checks of filter values live here (they need the proto kinds);
every other check is the core's."""

from __future__ import annotations

import numpy as np

from winnow.api.internal.index.v1 import index_pb2 as pb
from winnow.common.errors import InvalidArgument
from winnow.services.index import validate
from winnow.services.index.model import (
    FilterTerm, Hit, RangePage, RangeQuery, ReplicaStatus, SearchQuery, ShardResult, ShardStats,
)


def _packed(raw: bytes) -> np.ndarray:
    """`vector_f32` bytes as float32 (read-only view: the core copies when it normalises or stores)."""
    if len(raw) % 4:
        raise InvalidArgument(f"vector_f32 is {len(raw)} bytes, not a whole number of float32 values")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32, copy=False)


def _filters(filters) -> list[FilterTerm]:
    out = []
    for f in filters:
        kind = f.equals.WhichOneof("kind") if f.HasField("equals") else None
        value = getattr(f.equals, kind) if kind else None
        out.append(validate.filter_term(f.field, kind or "", value))
    return out


def _vector(req) -> np.ndarray | None:
    """The request's vector: packed `vector_f32` when set, else the repeated floats; None when neither."""
    if req.vector_f32:
        return _packed(req.vector_f32)
    return np.asarray(req.vector, np.float32) if len(req.vector) else None


def search_query_from_proto(req: pb.SearchRequest) -> SearchQuery:
    return SearchQuery(
        vector=_vector(req), k=req.k, text=req.query_text, lexical_k=req.lexical_k,
        filters=_filters(req.filters), nprobe=req.params.nprobe, ef_search=req.params.ef_search,
        coarse_dim=req.coarse_dim, coarse_candidates=req.coarse_candidates, include_payloads=req.include_payloads,
        payload_top=req.payload_top if req.packed else 0,
    )


def range_query_from_proto(req: pb.RangeSearchRequest) -> RangeQuery:
    vec = _vector(req)
    return RangeQuery(
        vector=vec if vec is not None else np.zeros(0, np.float32), threshold=req.threshold,
        page_size=req.page_size, filters=_filters(req.filters), coarse_dim=req.coarse_dim,
        include_payloads=req.include_payloads, max_results=req.max_results,
    )


def _add_hits(container, hits: list[Hit]) -> None:
    """Append hits field by field: about 4x faster than building pb.Hit(...) objects (80 hits: 35 vs 130 us)."""
    add = container.add
    for h in hits:
        out = add()
        out.id = h.id
        out.score = h.score
        if h.text:
            out.text = h.text
        if h.metadata_json:
            out.metadata_json = h.metadata_json


def get_result_to_proto(found: list[Hit], missing: list[str]) -> pb.GetResponse:
    out = pb.GetResponse(missing=missing)
    _add_hits(out.documents, found)
    return out


def shard_result_to_proto(r: ShardResult, packed: bool = False) -> pb.SearchResponse:
    out = pb.SearchResponse(generation=r.generation, applied_seq=r.generation, timings_ms=r.timings_ms)
    if not packed:
        _add_hits(out.dense, r.dense)
        _add_hits(out.lexical, r.lexical)
        return out
    # One C-level copy per field instead of a message per hit: the gateway decodes it without per-hit objects.
    out.packed = True
    out.dense_ids.extend([h.id for h in r.dense])
    out.dense_scores_f32 = np.asarray([h.score for h in r.dense], "<f4").tobytes()
    out.lexical_ids.extend([h.id for h in r.lexical])
    out.lexical_scores_f32 = np.asarray([h.score for h in r.lexical], "<f4").tobytes()
    seen: set[str] = set()
    add = out.payloads.add
    for h in r.dense + r.lexical:
        if h.text and h.id not in seen:
            seen.add(h.id)
            p = add()
            p.id, p.text = h.id, h.text
            if h.metadata_json:
                p.metadata_json = h.metadata_json
    return out


def range_page_to_proto(p: RangePage) -> pb.RangeSearchPage:
    out = pb.RangeSearchPage(page=p.page, last=p.last, total=p.total, generation=p.generation, timings_ms=p.timings_ms)
    _add_hits(out.hits, p.hits)
    return out


def stats_to_proto(s: ShardStats, r: ReplicaStatus) -> pb.StatsResponse:
    return pb.StatsResponse(
        shard_id=s.shard_id, count=s.count, generation=s.generation, dimension=s.dimension,
        index_factory=s.index_factory, trained=s.trained, device=s.device, applied_seq=s.generation,
        caught_up=r.caught_up, partition=r.partition, replica_id=r.replica_id, layout=r.layout, lag=r.lag,
    )


def train_result_to_proto(trained: bool, generation: int) -> pb.TrainResponse:
    return pb.TrainResponse(trained=trained, generation=generation)


def watch_event_to_proto(generation: int, count: int) -> pb.WatchResponse:
    return pb.WatchResponse(generation=generation, count=count, applied_seq=generation)
