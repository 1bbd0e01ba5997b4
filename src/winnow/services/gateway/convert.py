"""Public proto <-> gateway domain, with request validation: every bad input is an actionable InvalidArgument."""

from __future__ import annotations

from typing import Any

from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.core import limits
from winnow.core.errors import InvalidArgument
from winnow.services.gateway.model import (
    Candidate, Coverage, Fusion, Mode, Retrieval, SearchOptions, SearchResult, WriteDocument,
)
from winnow.services.gateway.settings import GatewaySettings

_MODES = {pb.MODE_UNSPECIFIED: None, pb.MODE_PRECISION: Mode.PRECISION, pb.MODE_BULK: Mode.BULK}
_FUSION = {pb.FUSION_UNSPECIFIED: None, pb.FUSION_CONVEX: Fusion.CONVEX, pb.FUSION_RRF: Fusion.RRF}
_RETRIEVAL = {
    pb.RETRIEVAL_UNSPECIFIED: Retrieval.HYBRID, pb.RETRIEVAL_HYBRID: Retrieval.HYBRID,
    pb.RETRIEVAL_DENSE: Retrieval.DENSE, pb.RETRIEVAL_LEXICAL: Retrieval.LEXICAL,
}


def encode_result(r: SearchResult) -> bytes:
    """What the result cache stores: the response's wire form (no request id, timings or cache flag)."""
    return pb.SearchResponse(
        hits=[hit(c) for c in r.hits], coverage=coverage(r.coverage), reranked=r.reranked,
        rerank_skipped_reason=r.rerank_skipped_reason, model=r.model, reranker=r.reranker,
        dense_skipped_reason=r.dense_skipped_reason,
    ).SerializeToString()


def _filter_value(f: pb.Filter, index: int) -> Any:
    kind = f.equals.WhichOneof("kind")
    if kind == "string_value":
        return f.equals.string_value
    if kind == "number_value":
        return limits.filter_number(f.equals.number_value, f"filters[{index}] ({f.field!r})")
    if kind == "bool_value":
        return f.equals.bool_value
    raise InvalidArgument(
        f"filters[{index}] ({f.field!r}): value must be a string, number or bool (got {kind or 'nothing'})"
    )


def search_options(req: pb.SearchRequest, s: GatewaySettings, default_mode: Mode, dimension: int = 0,
                   allowed_dims: tuple[int, ...] = ()) -> SearchOptions:
    """Validate and normalise a SearchRequest; raises InvalidArgument naming the field and the fix.

    `dimension` / `allowed_dims`: the embedder's, when known (0 = not yet), for checking mrl_dim here."""
    query = req.query.strip()
    if not query:
        raise InvalidArgument("query is empty: send the text to search for in `query`")
    if len(query) > s.max_query_chars:
        raise InvalidArgument(f"query is {len(query)} characters; the limit is {s.max_query_chars}")
    if req.mode not in _MODES:
        raise InvalidArgument(f"unknown mode {req.mode}: use MODE_PRECISION (Search) or MODE_BULK (BulkSearch)")
    mode = _MODES[req.mode] or default_mode
    if req.retrieval not in _RETRIEVAL:
        raise InvalidArgument(f"unknown retrieval {req.retrieval}: use HYBRID, DENSE or LEXICAL")
    retrieval = _RETRIEVAL[req.retrieval]
    if req.fusion not in _FUSION:
        raise InvalidArgument(f"unknown fusion {req.fusion}: use FUSION_CONVEX or FUSION_RRF")
    fusion = _FUSION[req.fusion] or Fusion(s.fusion)
    k = req.k or s.default_k
    if k > s.max_k:
        raise InvalidArgument(f"k={k} is above the limit of {s.max_k}; for more results use BulkSearch")
    window = req.candidate_window or max(s.default_window, k)
    if window > s.max_window:
        raise InvalidArgument(f"candidate_window={window} is above the limit of {s.max_window}")
    if window < k:
        raise InvalidArgument(f"candidate_window={window} is smaller than k={k}: it must be >= k")
    if not -1.0 <= req.threshold <= 1.0:
        raise InvalidArgument(f"threshold={req.threshold} is outside [-1, 1] (cosine similarity)")
    page_size = req.page_size or s.bulk_page_size
    if page_size > s.max_page_size:
        raise InvalidArgument(f"page_size={page_size} is above the limit of {s.max_page_size}")
    if req.mrl_dim and retrieval is Retrieval.LEXICAL:
        raise InvalidArgument("mrl_dim applies to dense retrieval; it was set with RETRIEVAL_LEXICAL")
    limits.search_params(s.limits(), ef_search=req.ef_search, nprobe=req.nprobe)
    limits.mrl_dim(req.mrl_dim, dimension, allowed_dims)
    filters = []
    for i, f in enumerate(req.filters):
        if not f.field:
            raise InvalidArgument(f"filters[{i}].field is empty")
        filters.append((f.field, _filter_value(f, i)))
    return SearchOptions(
        query=query, mode=mode, k=k, window=window,
        rerank=req.rerank if req.HasField("rerank") else True,
        retrieval=retrieval, fusion=fusion, rrf_k=req.rrf_k or s.rrf_k, mrl_dim=req.mrl_dim, filters=tuple(filters),
        threshold=req.threshold, page_size=page_size,
        max_results=min(req.max_results or s.max_bulk_results, s.max_bulk_results),
        nprobe=req.nprobe, ef_search=req.ef_search, no_cache=req.no_cache,
    )


def _check_ids(ids: list[str], s: GatewaySettings, what: str) -> None:
    if not ids:
        raise InvalidArgument(f"{what}: the list is empty")
    if len(ids) > s.max_write_docs:
        raise InvalidArgument(f"{what}: {len(ids)} items; the limit is {s.max_write_docs} per request")
    lim = s.limits()
    for i, doc_id in enumerate(ids):
        limits.doc_id(doc_id, f"{what}: ids[{i}]", lim)


def write_documents(req: pb.UpsertRequest, s: GatewaySettings) -> list[WriteDocument]:
    """Every document checked (the shards' own limits) before any is written: one bad document refuses all."""
    if not req.documents:
        raise InvalidArgument("upsert: documents is empty")
    if len(req.documents) > s.max_write_docs:
        raise InvalidArgument(f"upsert: {len(req.documents)} documents; the limit is {s.max_write_docs} per request")
    lim = s.limits()
    seen: set[str] = set()
    docs = []
    for i, d in enumerate(req.documents):
        field = f"upsert: documents[{i}]"
        limits.document(d.id, d.text, d.metadata_json, field, lim)
        if d.id in seen:
            raise InvalidArgument(f"{field}.id {d.id!r} appears twice in one request")
        seen.add(d.id)
        if not d.text.strip():
            raise InvalidArgument(f"{field}.text is empty (document {d.id!r})")
        docs.append(WriteDocument(d.id, d.text, d.metadata_json))
    return docs


def ids(req_ids, s: GatewaySettings, what: str) -> list[str]:
    out = list(req_ids)
    _check_ids(out, s, what)
    return out


def hit(c: Candidate) -> pb.Hit:
    h = pb.Hit(
        id=c.id, score=c.score, text=c.text, metadata_json=c.metadata_json,
        first_stage_rank=c.first_stage_rank, first_stage_score=c.first_stage_score,
        dense_rank=c.dense_rank, lexical_rank=c.lexical_rank,
    )
    if c.rerank_score is not None:
        h.rerank_score = c.rerank_score
    return h


def coverage(c: Coverage) -> pb.Coverage:
    return pb.Coverage(shards_asked=c.asked, shards_answered=c.answered, failed_shards=c.failed)


def search_response(r: SearchResult, request_id: str) -> pb.SearchResponse:
    if r.payload is not None:  # a cache hit: the stored wire form, re-stamped for this request
        resp = pb.SearchResponse.FromString(r.payload)
        resp.cache_hit = True
        resp.request_id = request_id
        resp.timings_ms.clear()
        resp.timings_ms.update(r.timings_ms)
        return resp
    return pb.SearchResponse(
        hits=[hit(c) for c in r.hits], coverage=coverage(r.coverage), reranked=r.reranked,
        rerank_skipped_reason=r.rerank_skipped_reason, cache_hit=r.cache_hit, timings_ms=r.timings_ms,
        request_id=request_id, model=r.model, reranker=r.reranker, dense_skipped_reason=r.dense_skipped_reason,
    )
