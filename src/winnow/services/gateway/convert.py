"""Proto <-> gateway domain, both sides of the gateway: the public API (with request validation: every bad input is
an actionable InvalidArgument) and the internal APIs the gateway calls (embedder, reranker, index shards).

Names say the direction: `x_from_proto` reads a message into the domain, `x_to_proto` builds one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
from google.protobuf.struct_pb2 import Struct

from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.api.internal.embedder.v1 import embedder_pb2
from winnow.api.internal.index.v1 import index_pb2
from winnow.api.internal.reranker.v1 import reranker_pb2
from winnow.common import limits
from winnow.common.errors import InvalidArgument
from winnow.rpc.protovalues import struct_to_dict, to_value
from winnow.services.gateway.consistency import decode_token
from winnow.services.gateway.model import (
    Candidate, Coverage, Fusion, Mode, Retrieval, SearchOptions, SearchResult, WriteDocument,
)
from winnow.services.gateway.ports import Hit, ShardQuery, ShardRangeQuery, ShardResult, ShardStats
from winnow.services.gateway.settings import GatewaySettings
from winnow.services.gateway.vectors import VectorSpace, check_model, unit_vector

_FUSION = {pb.FUSION_UNSPECIFIED: None, pb.FUSION_CONVEX: Fusion.CONVEX, pb.FUSION_RRF: Fusion.RRF}
_RETRIEVAL = {
    pb.RETRIEVAL_UNSPECIFIED: Retrieval.HYBRID, pb.RETRIEVAL_HYBRID: Retrieval.HYBRID,
    pb.RETRIEVAL_DENSE: Retrieval.DENSE, pb.RETRIEVAL_LEXICAL: Retrieval.LEXICAL,
}


def search_result_to_bytes(r: SearchResult) -> bytes:
    """What the result cache stores: the response's wire form (no request id, timings or cache flag)."""
    return pb.SearchResponse(
        hits=[hit_to_proto(c) for c in r.hits], coverage=coverage_to_proto(r.coverage), reranked=r.reranked,
        rerank_skipped_reason=r.rerank_skipped_reason, model=r.model, reranker=r.reranker, served_at=r.served_at,
        dense_skipped_reason=r.dense_skipped_reason,
    ).SerializeToString()


def _filter_value(f: pb.Filter, index: int = 0) -> Any:
    kind = f.equals.WhichOneof("kind")
    if kind == "string_value":
        return f.equals.string_value
    if kind == "number_value":
        return limits.filter_number(f.equals.number_value, f"filters[{index}] ({f.field!r})")
    if kind == "bool_value":
        return f.equals.bool_value
    raise InvalidArgument(
        f"filters[{index}] ({f.field!r}): value must be a string, number or bool (got {kind or 'nothing'})",
        field=f"filters[{index}].equals", reason="BAD_FILTER",
    )


def _invalid(message: str, field: str, reason: str, **info: object) -> InvalidArgument:
    return InvalidArgument(message, field=field, reason=reason, info=info)


def _query_vector(req, space: VectorSpace, retrieval: Retrieval, query: str, mode: Mode):
    """The caller's query vector (unit) or None; checks it fits the request and the collection."""
    if not len(req.query_vector):
        if req.vector_model:
            raise _invalid("vector_model is set but query_vector is empty: send the vector it names", "vector_model",
                           "VECTOR_MODEL_WITHOUT_VECTOR")
        # space.model "" = the embedder has not answered yet: not the caller's fault; the embed call decides
        # (UNAVAILABLE for dense, the BM25 fallback for hybrid).
        if (retrieval.dense or mode is Mode.BULK) and not space.embeddable and space.model:
            raise _invalid(
                f"query_vector is required: this collection holds vectors of {space.model!r}, which the "
                f"embedder does not make (or use RETRIEVAL_LEXICAL)", "query_vector", "QUERY_VECTOR_REQUIRED")
        if not query:
            raise _invalid("query is empty: send the text to search for in `query` (or a query_vector)", "query",
                           "QUERY_EMPTY")
        return None
    if retrieval is Retrieval.LEXICAL:
        raise _invalid("query_vector is set with RETRIEVAL_LEXICAL, which does not use it: drop it or "
                       "use RETRIEVAL_DENSE / RETRIEVAL_HYBRID", "query_vector", "QUERY_VECTOR_WITH_LEXICAL")
    if not query and retrieval is Retrieval.HYBRID and mode is Mode.PRECISION:  # bulk is dense only
        raise _invalid("query is empty: hybrid retrieval needs the text for BM25 besides query_vector "
                       "(or use RETRIEVAL_DENSE for the vector alone)", "query", "QUERY_EMPTY")
    check_model(req.vector_model, space, "vector_model")
    return unit_vector(req.query_vector, space, "query_vector")


def _common(req, s: GatewaySettings) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """Checks shared by Search and BulkSearch: the query's length and the filters (an empty query is allowed
    with a query_vector: `_query_vector` decides)."""
    query = req.query.strip()
    if len(query) > s.max_query_chars:
        raise _invalid(f"query is {len(query)} characters; the limit is {s.max_query_chars}", "query",
                       "QUERY_TOO_LONG", limit=s.max_query_chars)
    filters = []
    for i, f in enumerate(req.filters):
        if not f.field:
            raise _invalid(f"filters[{i}].field is empty", f"filters[{i}].field", "BAD_FILTER")
        filters.append((f.field, _filter_value(f, i)))
    return query, tuple(filters)


def search_options_from_proto(req: pb.SearchRequest, s: GatewaySettings,
                              space: VectorSpace | None = None) -> SearchOptions:
    """Validate and normalise a SearchRequest; raises InvalidArgument naming the field and the fix."""
    query, filters = _common(req, s)
    space = space or VectorSpace("", 0)
    if req.mode not in (pb.MODE_UNSPECIFIED, pb.MODE_PRECISION):
        if req.mode == pb.MODE_BULK:
            raise _invalid("mode MODE_BULK streams its results: call Gateway.BulkSearch", "mode", "WRONG_RPC_FOR_MODE")
        raise _invalid(f"unknown mode {req.mode}: use MODE_PRECISION (Search) or MODE_BULK (BulkSearch)", "mode",
                       "UNKNOWN_ENUM_VALUE")
    if req.retrieval not in _RETRIEVAL:
        raise _invalid(f"unknown retrieval {req.retrieval}: use HYBRID, DENSE or LEXICAL", "retrieval",
                       "UNKNOWN_ENUM_VALUE")
    retrieval = _RETRIEVAL[req.retrieval]
    vector = _query_vector(req, space, retrieval, query, Mode.PRECISION)
    rerank = req.rerank if req.HasField("rerank") else bool(query)
    if rerank and not query:
        raise _invalid("rerank needs the query text: send `query` with the vector, or set rerank=false", "rerank",
                       "RERANK_NEEDS_QUERY")
    if req.fusion not in _FUSION:
        raise _invalid(f"unknown fusion {req.fusion}: use FUSION_CONVEX or FUSION_RRF", "fusion", "UNKNOWN_ENUM_VALUE")
    fusion = _FUSION[req.fusion] or Fusion(s.fusion)
    k = req.k or s.default_k
    if k > s.max_k:
        raise _invalid(f"k={k} is above the limit of {s.max_k}; for more results use BulkSearch", "k", "K_TOO_LARGE",
                       limit=s.max_k)
    window = req.candidate_window or max(s.default_window, k)
    if window > s.max_window:
        raise _invalid(f"candidate_window={window} is above the limit of {s.max_window}", "candidate_window",
                       "WINDOW_TOO_LARGE", limit=s.max_window)
    if window < k:
        raise _invalid(f"candidate_window={window} is smaller than k={k}: it must be >= k", "candidate_window",
                       "WINDOW_SMALLER_THAN_K")
    if req.rerank_depth > window:
        raise _invalid(f"rerank_depth={req.rerank_depth} is above candidate_window={window}: the reranker can only "
                       "score candidates of the window", "rerank_depth", "RERANK_DEPTH_ABOVE_WINDOW")
    if req.mrl_dim and retrieval is Retrieval.LEXICAL:
        raise _invalid("mrl_dim applies to dense retrieval; it was set with RETRIEVAL_LEXICAL", "mrl_dim",
                       "MRL_WITH_LEXICAL")
    limits.search_params(s.limits(), ef_search=req.ef_search, nprobe=req.nprobe)
    limits.mrl_dim(req.mrl_dim, space.dimension)
    token_layout, token_seqs = _write_token(req)
    return SearchOptions(
        query=query, mode=Mode.PRECISION, k=k, window=window, rerank=rerank, rerank_depth=req.rerank_depth,
        retrieval=retrieval, fusion=fusion, rrf_k=req.rrf_k or s.rrf_k, mrl_dim=req.mrl_dim, filters=filters,
        nprobe=req.nprobe, ef_search=req.ef_search, no_cache=req.no_cache,
        token_layout=token_layout, token_seqs=token_seqs, vector=vector,
    )


def _write_token(req) -> tuple[str, tuple[tuple[int, int], ...]]:
    """A read-your-writes token as (layout, sorted (partition, seq) pairs); ("", ()) when there is none."""
    if not req.write_token:
        return "", ()
    try:
        layout, seqs = decode_token(req.write_token)
    except InvalidArgument as exc:
        raise _invalid(str(exc), "write_token", "BAD_WRITE_TOKEN") from None
    return layout, tuple(sorted(seqs.items()))


def bulk_options_from_proto(req: pb.BulkSearchRequest, s: GatewaySettings,
                            space: VectorSpace | None = None) -> SearchOptions:
    """Validate and normalise a BulkSearchRequest (the cursor is decoded by the servicer)."""
    query, filters = _common(req, s)
    space = space or VectorSpace("", 0)
    if req.mode not in (pb.MODE_UNSPECIFIED, pb.MODE_BULK):
        if req.mode == pb.MODE_PRECISION:
            raise _invalid("mode MODE_PRECISION returns one reranked list: call Gateway.Search", "mode",
                           "WRONG_RPC_FOR_MODE")
        raise _invalid(f"unknown mode {req.mode}: use MODE_BULK", "mode", "UNKNOWN_ENUM_VALUE")
    if req.retrieval not in (pb.RETRIEVAL_UNSPECIFIED, pb.RETRIEVAL_DENSE):
        raise _invalid("bulk search is dense (cosine similarity >= threshold): leave retrieval unset or DENSE",
                       "retrieval", "BULK_IS_DENSE")
    vector = _query_vector(req, space, Retrieval.DENSE, query, Mode.BULK)
    limits.search_params(s.limits(), ef_search=req.ef_search, nprobe=req.nprobe)
    limits.mrl_dim(req.mrl_dim, space.dimension)
    if not -1.0 <= req.threshold <= 1.0:
        raise _invalid(f"threshold={req.threshold} is outside [-1, 1] (cosine similarity)", "threshold",
                       "THRESHOLD_OUT_OF_RANGE")
    page_size = req.page_size or min(s.bulk_page_size, s.max_page_size)
    if page_size > s.max_page_size:
        raise _invalid(f"page_size={page_size} is above the limit of {s.max_page_size}", "page_size",
                       "PAGE_SIZE_TOO_LARGE", limit=s.max_page_size)
    token_layout, token_seqs = _write_token(req)
    return SearchOptions(
        query=query, mode=Mode.BULK, retrieval=Retrieval.DENSE, rerank=False, mrl_dim=req.mrl_dim, filters=filters,
        threshold=req.threshold, page_size=page_size,
        max_results=min(req.max_results or s.max_bulk_results, s.max_bulk_results),
        nprobe=req.nprobe, ef_search=req.ef_search, token_layout=token_layout, token_seqs=token_seqs, vector=vector,
    )


def limits_to_proto(s: GatewaySettings) -> pb.ServerLimits:
    """What one request may ask for (ClusterInfo.limits), read from the settings."""
    return pb.ServerLimits(
        max_write_docs=s.max_write_docs, max_message_bytes=s.max_message_bytes, max_doc_bytes=s.payload_max_bytes,
        max_k=s.max_k, max_window=s.max_window, max_page_size=s.max_page_size, max_bulk_results=s.max_bulk_results,
        max_query_chars=s.max_query_chars,
    )


def _check_ids(ids: list[str], s: GatewaySettings, what: str, field: str) -> None:
    if not ids:
        raise _invalid(f"{what}: the list is empty", field, "EMPTY_REQUEST")
    if len(ids) > s.max_write_docs:
        raise _invalid(f"{what}: {len(ids)} items; the limit is {s.max_write_docs} per request", field,
                       "TOO_MANY_ITEMS", limit=s.max_write_docs)
    lim = s.limits()
    for i, doc_id in enumerate(ids):
        where = f"{field}[{i}]" + (".id" if field == "documents" else "")
        if not doc_id.strip():
            raise _invalid(f"{what}: {where} is empty: every document needs an id", where, "EMPTY_ID")
        try:
            limits.doc_id(doc_id, f"{what}: {where}", lim)
        except InvalidArgument as exc:
            raise _invalid(str(exc), where, "ID_TOO_LONG", limit=s.max_id_bytes) from None


def _metadata_json(d: pb.Document, i: int, lim: limits.Limits = limits.DEFAULT_LIMITS) -> str:
    """A Document's metadata as the JSON object text the shards store: the Struct, or the deprecated JSON field."""
    field = f"documents[{i}].metadata"
    if d.HasField("metadata"):
        if d.metadata_json:
            raise _invalid(f"upsert: document {d.id!r} sets both metadata and metadata_json: send only `metadata`",
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
        raise _invalid(str(exc), f"documents[{i}].metadata_json", "BAD_METADATA") from None
    return d.metadata_json


def _doc_vector(i: int, d: pb.Document, space: VectorSpace):
    if not len(d.vector):
        if not space.embeddable:
            raise _invalid(
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
            raise _invalid("vector_model is set but no document carries a vector", "vector_model",
                           "VECTOR_MODEL_WITHOUT_VECTOR")
        check_model(req.vector_model, space, "vector_model")
    seen: set[str] = set()
    docs = []
    for i, d in enumerate(req.documents):
        if d.id in seen:
            raise _invalid(f"upsert: id {d.id!r} appears twice in one request", f"documents[{i}].id", "DUPLICATE_ID")
        seen.add(d.id)
        if not d.text.strip():
            raise _invalid(f"upsert: documents[{i}].text is empty (document {d.id!r})", f"documents[{i}].text",
                           "EMPTY_TEXT")
        meta = _metadata_json(d, i, lim)
        try:
            limits.document(d.id, d.text, meta, f"upsert: documents[{i}]", lim)  # the shards' own checks, here
        except InvalidArgument as exc:
            too_big = "payload_max_bytes" in str(exc)
            raise _invalid(str(exc), f"documents[{i}]", "DOCUMENT_TOO_LARGE" if too_big else "BAD_DOCUMENT",
                           **({"limit": lim.payload_max_bytes} if too_big else {})) from None
        docs.append(WriteDocument(d.id, d.text, meta, _doc_vector(i, d, space)))
    return docs


def ids_from_proto(req_ids, s: GatewaySettings, what: str) -> list[str]:
    out = list(req_ids)
    _check_ids(out, s, what, "ids")
    return out


def _struct(metadata_json: str) -> Struct | None:
    if not metadata_json:
        return None
    try:
        value = json.loads(metadata_json)
    except json.JSONDecodeError:
        return None  # stored by hand and not JSON: the deprecated text field still carries it
    if not isinstance(value, dict) or not value:
        return None
    st = Struct()
    st.update(value)
    return st


def hit_to_proto(c: Candidate) -> pb.Hit:
    h = pb.Hit(
        id=c.id, score=c.score, text=c.text, metadata_json=c.metadata_json,
        first_stage_rank=c.first_stage_rank, first_stage_score=c.first_stage_score,
        dense_rank=c.dense_rank, lexical_rank=c.lexical_rank,
    )
    if c.rerank_score is not None:
        h.rerank_score = c.rerank_score
    meta = _struct(c.metadata_json)
    if meta is not None:
        h.metadata.CopyFrom(meta)
    return h


def coverage_to_proto(c: Coverage) -> pb.Coverage:
    return pb.Coverage(shards_asked=c.asked, shards_answered=c.answered, failed_shards=c.failed)


def search_result_to_proto(r: SearchResult, request_id: str) -> pb.SearchResponse:
    if r.payload is not None:  # a cache hit: the stored wire form, re-stamped for this request
        resp = pb.SearchResponse.FromString(r.payload)
        resp.cache_hit = True
        resp.request_id = request_id
        resp.timings_ms.clear()
        resp.timings_ms.update(r.timings_ms)
        return resp
    return pb.SearchResponse(
        hits=[hit_to_proto(c) for c in r.hits], coverage=coverage_to_proto(r.coverage), reranked=r.reranked,
        rerank_skipped_reason=r.rerank_skipped_reason, cache_hit=r.cache_hit, timings_ms=r.timings_ms,
        request_id=request_id, model=r.model, reranker=r.reranker, served_at=r.served_at,
        consistency_unmet=r.consistency_unmet, dense_skipped_reason=r.dense_skipped_reason,
    )


def bulk_page_to_proto(page, request_id: str, cursor: str = "") -> pb.BulkSearchPage:
    """One streamed page of a bulk search (`search.BulkPage`), with the cursor that resumes after it."""
    return pb.BulkSearchPage(
        hits=[hit_to_proto(c) for c in page.hits], page=page.page, last=page.last, total=page.total,
        coverage=coverage_to_proto(page.coverage), timings_ms=page.timings_ms, request_id=request_id, cursor=cursor,
        served_at=page.served_at, consistency_unmet=page.consistency_unmet,
    )


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
