"""Proto <-> gateway domain for the rest of the public API (Upsert, Delete and Get validated all or nothing, their
results, ClusterInfo) and for the internal APIs the gateway calls (embedder, reranker, index shards). The search
RPCs have theirs in `convert_search`, the feedback RPCs in `convert_feedback`.

Names say the direction: `x_from_proto` reads a message into the domain, `x_to_proto` builds one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np

from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.api.internal.embedder.v1 import embedder_pb2
from winnow.api.internal.index.v1 import index_pb2
from winnow.api.internal.reranker.v1 import reranker_pb2
from winnow.common import limits
from winnow.common.errors import InvalidArgument
from winnow.rpc.protovalues import struct_to_dict, to_value
from winnow.services.gateway.convert_search import hit_to_proto, invalid
from winnow.services.gateway.model import Candidate, WriteDocument
from winnow.services.gateway.ports import Hit, ShardQuery, ShardRangeQuery, ShardResult, ShardStats
from winnow.services.gateway.settings import GatewaySettings
from winnow.services.gateway.vectors import VectorSpace, check_model, unit_vector


def limits_to_proto(s: GatewaySettings) -> pb.ServerLimits:
    """What one request may ask for (ClusterInfo.limits), read from the settings."""
    return pb.ServerLimits(
        max_write_docs=s.max_write_docs, max_message_bytes=s.max_message_bytes, max_doc_bytes=s.payload_max_bytes,
        max_k=s.max_k, max_window=s.max_window, max_page_size=s.max_page_size, max_bulk_results=s.max_bulk_results,
        max_query_chars=s.max_query_chars,
    )


def _check_ids(ids: list[str], s: GatewaySettings, what: str, field: str) -> None:
    if not ids:
        raise invalid(f"{what}: the list is empty", field, "EMPTY_REQUEST")
    if len(ids) > s.max_write_docs:
        raise invalid(f"{what}: {len(ids)} items; the limit is {s.max_write_docs} per request", field,
                      "TOO_MANY_ITEMS", limit=s.max_write_docs)
    lim = s.limits()
    for i, doc_id in enumerate(ids):
        where = f"{field}[{i}]" + (".id" if field == "documents" else "")
        if not doc_id.strip():
            raise invalid(f"{what}: {where} is empty: every document needs an id", where, "EMPTY_ID")
        try:
            limits.doc_id(doc_id, f"{what}: {where}", lim)
        except InvalidArgument as exc:
            raise invalid(str(exc), where, "ID_TOO_LONG", limit=s.max_id_bytes) from None


def _metadata_json(d: pb.Document, i: int, lim: limits.Limits = limits.DEFAULT_LIMITS) -> str:
    """A Document's metadata as the JSON object text the shards store: the Struct, or the deprecated JSON field."""
    field = f"documents[{i}].metadata"
    if d.HasField("metadata"):
        if d.metadata_json:
            raise invalid(f"upsert: document {d.id!r} sets both metadata and metadata_json: send only `metadata`",
                          field, "BAD_METADATA")
        return json.dumps(struct_to_dict(d.metadata), separators=(",", ":")) if d.metadata.fields else ""
    if not d.metadata_json:
        return ""
    # The shared checks (winnow.common.limits): size first, then depth without parsing (a 100k-deep text would
    # exhaust the parser's stack), then a JSON object with finite numbers only.
    try:
        limits.payload(d.text, d.metadata_json, f"upsert: documents[{i}]", lim)
        limits.metadata(d.metadata_json, f"upsert: documents[{i}].metadata_json", lim)
    except InvalidArgument as exc:
        raise invalid(str(exc), f"documents[{i}].metadata_json", "BAD_METADATA") from None
    return d.metadata_json


def _doc_vector(i: int, d: pb.Document, space: VectorSpace):
    if not len(d.vector):
        if not space.embeddable:
            raise invalid(
                f"documents[{i}].vector is required (id {d.id!r}): this collection holds vectors of "
                f"{space.model!r}, which the embedder does not make", f"documents[{i}].vector", "VECTOR_REQUIRED")
        return None
    return unit_vector(d.vector, space, f"documents[{i}].vector")


def write_documents_from_proto(req: pb.UpsertRequest, s: GatewaySettings,
                               space: VectorSpace | None = None) -> list[WriteDocument]:
    """Validate a whole Upsert (all or nothing): ids, texts, metadata and any caller vectors, with the shards'
    own limits (winnow.common.limits), so a batch with one bad document writes nothing."""
    _check_ids([d.id for d in req.documents], s, "upsert", "documents")
    lim = s.limits()
    space = space or VectorSpace("", 0)
    if req.vector_model:
        if not any(len(d.vector) for d in req.documents):
            raise invalid("vector_model is set but no document carries a vector", "vector_model",
                          "VECTOR_MODEL_WITHOUT_VECTOR")
        check_model(req.vector_model, space, "vector_model")
    seen: set[str] = set()
    docs = []
    for i, d in enumerate(req.documents):
        if d.id in seen:
            raise invalid(f"upsert: id {d.id!r} appears twice in one request", f"documents[{i}].id", "DUPLICATE_ID")
        seen.add(d.id)
        if not d.text.strip():
            raise invalid(f"upsert: documents[{i}].text is empty (document {d.id!r})", f"documents[{i}].text",
                          "EMPTY_TEXT")
        meta = _metadata_json(d, i, lim)
        try:
            limits.document(d.id, d.text, meta, f"upsert: documents[{i}]", lim)  # the shards' own checks, here
        except InvalidArgument as exc:
            too_big = "payload_max_bytes" in str(exc)
            raise invalid(str(exc), f"documents[{i}]", "DOCUMENT_TOO_LARGE" if too_big else "BAD_DOCUMENT",
                          **({"limit": lim.payload_max_bytes} if too_big else {})) from None
        docs.append(WriteDocument(d.id, d.text, meta, _doc_vector(i, d, space)))
    return docs


def ids_from_proto(req_ids, s: GatewaySettings, what: str) -> list[str]:
    out = list(req_ids)
    _check_ids(out, s, what, "ids")
    return out


def upsert_result_to_proto(n: int, timings: dict[str, float], request_id: str, token: str = "") -> pb.UpsertResponse:
    return pb.UpsertResponse(upserted=n, timings_ms=timings, request_id=request_id, write_token=token)


def delete_result_to_proto(n: int, timings: dict[str, float], request_id: str, token: str = "") -> pb.DeleteResponse:
    return pb.DeleteResponse(deleted=n, timings_ms=timings, request_id=request_id, write_token=token)


def get_result_to_proto(found: list[Candidate], missing: list[str]) -> pb.GetResponse:
    return pb.GetResponse(documents=[hit_to_proto(c) for c in found], missing=missing)


def cluster_info_to_proto(shards: list[tuple[str, list[tuple[str, ShardStats | BaseException]]]],
                          embedder: dict[str, Any], reranker: dict[str, Any], cache: str, s: GatewaySettings,
                          layout: str = "", space: VectorSpace | None = None, version: str = "",
                          api_version: str = "") -> pb.ClusterInfoResponse:
    """ClusterInfo: per shard, every replica's address with its stats (or the error that kept them); the shard's
    own figures are its freshest replica's. Then the models, the cache, the layout, the collection's space, the
    request limits and the versions."""
    infos = []
    for address, replicas in shards:
        reps = [pb.ReplicaInfo(address=a, healthy=False, error=str(st)) if isinstance(st, BaseException) else
                pb.ReplicaInfo(address=a, healthy=True, count=st.count, applied_seq=st.generation)
                for a, st in replicas]
        good = [st for _, st in replicas if not isinstance(st, BaseException)]
        if not good:
            infos.append(pb.ShardInfo(address=address, healthy=False, replicas=reps,
                                      error="; ".join(r.error for r in reps)))
            continue
        best = max(good, key=lambda st: st.generation)
        infos.append(pb.ShardInfo(address=address, healthy=True, count=best.count, generation=best.generation,
                                  index_factory=best.index_factory, replicas=reps))
    return pb.ClusterInfoResponse(
        shards=infos, embedder_model=embedder.get("model", ""), embedder_device=embedder.get("device", ""),
        reranker_model=reranker.get("model", ""), reranker_scorer=reranker.get("scorer", ""),
        reranker_device=reranker.get("device", ""), documents=sum(i.count for i in infos), cache=cache,
        layout=layout, vector_model=space.model if space else "", dimension=space.dimension if space else 0,
        limits=limits_to_proto(s), version=version, api_version=api_version,
    )


# -- the internal APIs the gateway calls (clients.py) ----------------------------------------------------------

def embed_request_to_proto(texts: list[str], query: bool) -> embedder_pb2.EmbedRequest:
    kind = embedder_pb2.INPUT_KIND_QUERY if query else embedder_pb2.INPUT_KIND_DOCUMENT
    return embedder_pb2.EmbedRequest(texts=texts, kind=kind)


def vectors_from_proto(resp: embedder_pb2.EmbedResponse) -> np.ndarray:
    return np.asarray([e.values for e in resp.embeddings], dtype=np.float32)


def embedder_info_from_proto(info: embedder_pb2.InfoResponse) -> dict[str, Any]:
    return {"model": info.model, "dimension": info.dimension, "device": info.device,
            "allowed_dimensions": list(info.allowed_dimensions)}


def rerank_request_to_proto(query: str, candidates: list[Candidate], depth: int = 0) -> reranker_pb2.RerankRequest:
    return reranker_pb2.RerankRequest(
        query=query, depth=depth,
        candidates=[
            reranker_pb2.Candidate(id=c.id, text=c.text, first_stage_rank=c.first_stage_rank,
                                   first_stage_score=c.first_stage_score)
            for c in candidates
        ],
    )


def rerank_scores_from_proto(resp: reranker_pb2.RerankResponse, n: int) -> list[float]:
    """One score per candidate, in the request's order (the reply is sorted by score)."""
    scores = [0.0] * n
    for r in resp.results:
        scores[r.index] = r.score
    return scores


def reranker_info_from_proto(info: reranker_pb2.InfoResponse) -> dict[str, Any]:
    return {"model": info.model, "scorer": info.scorer, "device": info.device}


def _filters_to_proto(filters: tuple[tuple[str, Any], ...]) -> list[index_pb2.Filter]:
    return [index_pb2.Filter(field=field, equals=to_value(value)) for field, value in filters]


def _f32(vector: np.ndarray) -> bytes:
    """A vector as the shards' packed form: little-endian float32 bytes (one copy, no per-float encoding)."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def shard_query_to_proto(query: ShardQuery) -> index_pb2.SearchRequest:
    return index_pb2.SearchRequest(
        vector_f32=b"" if query.vector is None else _f32(query.vector),
        k=query.k, query_text=query.query_text, lexical_k=query.lexical_k, filters=_filters_to_proto(query.filters),
        params=index_pb2.SearchParams(nprobe=query.nprobe, ef_search=query.ef_search),
        coarse_dim=query.coarse_dim, include_payloads=query.include_payloads, min_applied_seq=query.min_applied_seq,
        packed=query.packed, payload_top=query.payload_top,
    )


def range_query_to_proto(query: ShardRangeQuery) -> index_pb2.RangeSearchRequest:
    return index_pb2.RangeSearchRequest(
        vector_f32=_f32(query.vector), threshold=query.threshold, page_size=query.page_size,
        filters=_filters_to_proto(query.filters), coarse_dim=query.coarse_dim, include_payloads=True,
        max_results=query.max_results,
        params=index_pb2.SearchParams(nprobe=query.nprobe, ef_search=query.ef_search),
    )


def hits_from_proto(hits: Iterable[index_pb2.Hit]) -> list[Hit]:
    return [Hit(id=h.id, score=h.score, text=h.text, metadata_json=h.metadata_json) for h in hits]


def shard_result_from_proto(resp: index_pb2.SearchResponse) -> ShardResult:
    if resp.packed:  # no per-hit message: two C-level copies per list
        return ShardResult(
            [], [], resp.generation, applied_seq=resp.applied_seq or resp.generation,
            dense_pairs=list(zip(np.frombuffer(resp.dense_scores_f32, "<f4").tolist(), resp.dense_ids)),
            lexical_pairs=list(zip(np.frombuffer(resp.lexical_scores_f32, "<f4").tolist(), resp.lexical_ids)),
            payloads={h.id: Hit(h.id, 0.0, h.text, h.metadata_json) for h in resp.payloads},
        )
    return ShardResult(hits_from_proto(resp.dense), hits_from_proto(resp.lexical), resp.generation,
                       applied_seq=resp.applied_seq or resp.generation)


def shard_stats_from_proto(name: str, s: index_pb2.StatsResponse) -> ShardStats:
    return ShardStats(name, s.count, s.generation, s.index_factory, s.dimension)
