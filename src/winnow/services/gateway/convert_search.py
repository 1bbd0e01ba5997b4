"""Proto <-> gateway domain for the public search RPCs: Search and BulkSearch requests validated into
`SearchOptions` (every bad input is an actionable InvalidArgument), and results, streamed pages and hits encoded,
the result cache's wire form included.

Apart from `convert` (writes, Get, cluster info and the internal APIs); the same conventions hold: `x_from_proto`
reads a message into the domain, `x_to_proto` builds one, no grpc here.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.struct_pb2 import Struct

from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.common import limits
from winnow.common.errors import InvalidArgument
from winnow.services.gateway.consistency import decode_token
from winnow.services.gateway.model import Candidate, Coverage, Fusion, Mode, Retrieval, SearchOptions, SearchResult
from winnow.services.gateway.settings import GatewaySettings
from winnow.services.gateway.vectors import VectorSpace, check_model, unit_vector

_FUSION = {pb.FUSION_UNSPECIFIED: None, pb.FUSION_CONVEX: Fusion.CONVEX, pb.FUSION_RRF: Fusion.RRF}
_RETRIEVAL = {
    pb.RETRIEVAL_UNSPECIFIED: Retrieval.HYBRID, pb.RETRIEVAL_HYBRID: Retrieval.HYBRID,
    pb.RETRIEVAL_DENSE: Retrieval.DENSE, pb.RETRIEVAL_LEXICAL: Retrieval.LEXICAL,
}


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


def invalid(message: str, field: str, reason: str, **info: object) -> InvalidArgument:
    """The InvalidArgument of a bad public request: the message, the field it names, its reason and ErrorInfo."""
    return InvalidArgument(message, field=field, reason=reason, info=info)


def _query_vector(req, space: VectorSpace, retrieval: Retrieval, query: str, mode: Mode):
    """The caller's query vector (unit) or None; checks it fits the request and the collection."""
    if not len(req.query_vector):
        if req.vector_model:
            raise invalid("vector_model is set but query_vector is empty: send the vector it names", "vector_model",
                          "VECTOR_MODEL_WITHOUT_VECTOR")
        # space.model "" = the embedder has not answered yet: not the caller's fault; the embed call decides
        # (UNAVAILABLE for dense, the BM25 fallback for hybrid).
        if (retrieval.dense or mode is Mode.BULK) and not space.embeddable and space.model:
            raise invalid(
                f"query_vector is required: this collection holds vectors of {space.model!r}, which the "
                f"embedder does not make (or use RETRIEVAL_LEXICAL)", "query_vector", "QUERY_VECTOR_REQUIRED")
        if not query:
            raise invalid("query is empty: send the text to search for in `query` (or a query_vector)", "query",
                          "QUERY_EMPTY")
        return None
    if retrieval is Retrieval.LEXICAL:
        raise invalid("query_vector is set with RETRIEVAL_LEXICAL, which does not use it: drop it or "
                      "use RETRIEVAL_DENSE / RETRIEVAL_HYBRID", "query_vector", "QUERY_VECTOR_WITH_LEXICAL")
    if not query and retrieval is Retrieval.HYBRID and mode is Mode.PRECISION:  # bulk is dense only
        raise invalid("query is empty: hybrid retrieval needs the text for BM25 besides query_vector "
                      "(or use RETRIEVAL_DENSE for the vector alone)", "query", "QUERY_EMPTY")
    check_model(req.vector_model, space, "vector_model")
    return unit_vector(req.query_vector, space, "query_vector")


def _common(req, s: GatewaySettings) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """Checks shared by Search and BulkSearch: the query's length and the filters (an empty query is allowed
    with a query_vector: `_query_vector` decides)."""
    query = req.query.strip()
    if len(query) > s.max_query_chars:
        raise invalid(f"query is {len(query)} characters; the limit is {s.max_query_chars}", "query",
                      "QUERY_TOO_LONG", limit=s.max_query_chars)
    filters = []
    for i, f in enumerate(req.filters):
        if not f.field:
            raise invalid(f"filters[{i}].field is empty", f"filters[{i}].field", "BAD_FILTER")
        filters.append((f.field, _filter_value(f, i)))
    return query, tuple(filters)


def search_options_from_proto(req: pb.SearchRequest, s: GatewaySettings,
                              space: VectorSpace | None = None) -> SearchOptions:
    """Validate and normalise a SearchRequest; raises InvalidArgument naming the field and the fix."""
    query, filters = _common(req, s)
    space = space or VectorSpace("", 0)
    if req.mode not in (pb.MODE_UNSPECIFIED, pb.MODE_PRECISION):
        if req.mode == pb.MODE_BULK:
            raise invalid("mode MODE_BULK streams its results: call Gateway.BulkSearch", "mode", "WRONG_RPC_FOR_MODE")
        raise invalid(f"unknown mode {req.mode}: use MODE_PRECISION (Search) or MODE_BULK (BulkSearch)", "mode",
                      "UNKNOWN_ENUM_VALUE")
    if req.retrieval not in _RETRIEVAL:
        raise invalid(f"unknown retrieval {req.retrieval}: use HYBRID, DENSE or LEXICAL", "retrieval",
                      "UNKNOWN_ENUM_VALUE")
    retrieval = _RETRIEVAL[req.retrieval]
    vector = _query_vector(req, space, retrieval, query, Mode.PRECISION)
    rerank = req.rerank if req.HasField("rerank") else bool(query)
    if rerank and not query:
        raise invalid("rerank needs the query text: send `query` with the vector, or set rerank=false", "rerank",
                      "RERANK_NEEDS_QUERY")
    if req.fusion not in _FUSION:
        raise invalid(f"unknown fusion {req.fusion}: use FUSION_CONVEX or FUSION_RRF", "fusion", "UNKNOWN_ENUM_VALUE")
    fusion = _FUSION[req.fusion] or Fusion(s.fusion)
    k = req.k or s.default_k
    if k > s.max_k:
        raise invalid(f"k={k} is above the limit of {s.max_k}; for more results use BulkSearch", "k", "K_TOO_LARGE",
                      limit=s.max_k)
    window = req.candidate_window or max(s.default_window, k)
    if window > s.max_window:
        raise invalid(f"candidate_window={window} is above the limit of {s.max_window}", "candidate_window",
                      "WINDOW_TOO_LARGE", limit=s.max_window)
    if window < k:
        raise invalid(f"candidate_window={window} is smaller than k={k}: it must be >= k", "candidate_window",
                      "WINDOW_SMALLER_THAN_K")
    if req.rerank_depth > window:
        raise invalid(f"rerank_depth={req.rerank_depth} is above candidate_window={window}: the reranker can only "
                      "score candidates of the window", "rerank_depth", "RERANK_DEPTH_ABOVE_WINDOW")
    if req.mrl_dim and retrieval is Retrieval.LEXICAL:
        raise invalid("mrl_dim applies to dense retrieval; it was set with RETRIEVAL_LEXICAL", "mrl_dim",
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
        raise invalid(str(exc), "write_token", "BAD_WRITE_TOKEN") from None
    return layout, tuple(sorted(seqs.items()))


def bulk_options_from_proto(req: pb.BulkSearchRequest, s: GatewaySettings,
                            space: VectorSpace | None = None) -> SearchOptions:
    """Validate and normalise a BulkSearchRequest (the cursor is decoded by the servicer)."""
    query, filters = _common(req, s)
    space = space or VectorSpace("", 0)
    if req.mode not in (pb.MODE_UNSPECIFIED, pb.MODE_BULK):
        if req.mode == pb.MODE_PRECISION:
            raise invalid("mode MODE_PRECISION returns one reranked list: call Gateway.Search", "mode",
                          "WRONG_RPC_FOR_MODE")
        raise invalid(f"unknown mode {req.mode}: use MODE_BULK", "mode", "UNKNOWN_ENUM_VALUE")
    if req.retrieval not in (pb.RETRIEVAL_UNSPECIFIED, pb.RETRIEVAL_DENSE):
        raise invalid("bulk search is dense (cosine similarity >= threshold): leave retrieval unset or DENSE",
                      "retrieval", "BULK_IS_DENSE")
    vector = _query_vector(req, space, Retrieval.DENSE, query, Mode.BULK)
    limits.search_params(s.limits(), ef_search=req.ef_search, nprobe=req.nprobe)
    limits.mrl_dim(req.mrl_dim, space.dimension)
    if not -1.0 <= req.threshold <= 1.0:
        raise invalid(f"threshold={req.threshold} is outside [-1, 1] (cosine similarity)", "threshold",
                      "THRESHOLD_OUT_OF_RANGE")
    page_size = req.page_size or min(s.bulk_page_size, s.max_page_size)
    if page_size > s.max_page_size:
        raise invalid(f"page_size={page_size} is above the limit of {s.max_page_size}", "page_size",
                      "PAGE_SIZE_TOO_LARGE", limit=s.max_page_size)
    token_layout, token_seqs = _write_token(req)
    return SearchOptions(
        query=query, mode=Mode.BULK, retrieval=Retrieval.DENSE, rerank=False, mrl_dim=req.mrl_dim, filters=filters,
        threshold=req.threshold, page_size=page_size,
        max_results=min(req.max_results or s.max_bulk_results, s.max_bulk_results),
        nprobe=req.nprobe, ef_search=req.ef_search, token_layout=token_layout, token_seqs=token_seqs, vector=vector,
    )


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


def search_result_to_bytes(r: SearchResult) -> bytes:
    """What the result cache stores: the response's wire form (no request id, timings or cache flag)."""
    return pb.SearchResponse(
        hits=[hit_to_proto(c) for c in r.hits], coverage=coverage_to_proto(r.coverage), reranked=r.reranked,
        rerank_skipped_reason=r.rerank_skipped_reason, model=r.model, reranker=r.reranker, served_at=r.served_at,
        dense_skipped_reason=r.dense_skipped_reason,
    ).SerializeToString()


def bulk_page_to_proto(page, request_id: str, cursor: str = "") -> pb.BulkSearchPage:
    """One streamed page of a bulk search (`bulk.BulkPage`), with the cursor that resumes after it."""
    return pb.BulkSearchPage(
        hits=[hit_to_proto(c) for c in page.hits], page=page.page, last=page.last, total=page.total,
        coverage=coverage_to_proto(page.coverage), timings_ms=page.timings_ms, request_id=request_id, cursor=cursor,
        served_at=page.served_at, consistency_unmet=page.consistency_unmet,
    )

