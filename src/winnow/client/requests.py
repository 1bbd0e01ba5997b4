"""Request building: keyword options -> gateway messages, local checks, and splitting writes to the limits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import grpc
from google.protobuf.struct_pb2 import Struct

from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.client.errors import InvalidArgumentError
from winnow.client.types import Document, Limits
from winnow.rpc.protovalues import to_value

RETRIEVAL = {"hybrid": pb.RETRIEVAL_HYBRID, "dense": pb.RETRIEVAL_DENSE, "lexical": pb.RETRIEVAL_LEXICAL}
FUSION = {"": pb.FUSION_UNSPECIFIED, "convex": pb.FUSION_CONVEX, "rrf": pb.FUSION_RRF}
# Room left in a message for what is not the documents themselves (tags, lengths, the envelope).
_MESSAGE_HEADROOM = 0.9


def _invalid(message: str, field: str) -> InvalidArgumentError:
    return InvalidArgumentError(grpc.StatusCode.INVALID_ARGUMENT, message, reason="CLIENT_VALIDATION",
                                field_violations=((field, message),))


def _filters(filters: Mapping[str, Any] | None) -> list[pb.Filter]:
    out = []
    for name, value in (filters or {}).items():
        if not isinstance(value, (str, int, float, bool)):
            raise _invalid(f"filter {name!r}: the value must be a string, number or bool", "filters")
        out.append(pb.Filter(field=name, equals=to_value(value)))
    return out


def search_request(query: str, *, k: int = 0, window: int = 0, rerank: bool | None = None, retrieval: str = "hybrid",
                   fusion: str = "", rrf_k: int = 0, mrl_dim: int = 0, filters: Mapping[str, Any] | None = None,
                   no_cache: bool = False, nprobe: int = 0, ef_search: int = 0,
                   write_token: str = "", vector: Sequence[float] | None = None,
                   vector_model: str = "", rerank_depth: int = 0) -> pb.SearchRequest:
    """A precision SearchRequest. 0 means "the gateway's default" for every number (k 64, window 80).

    retrieval: hybrid (BM25 + dense, fused), dense or lexical (BM25); fusion: "" (the gateway's), convex or rrf.
    filters: metadata equality, {field: string | number | bool}. write_token: an upsert's or delete's
    `write_token`, to read that write (read-your-writes). rerank: None = the gateway's default (on when there is
    query text). vector: your own query vector (list or numpy array; the embedder is skipped; `vector_model`
    names its model, "" = the collection's). rerank_depth: a cascade for this request, the reranker scores only
    the window's top N (0 = the reranker's own setting).
    """
    if retrieval not in RETRIEVAL:
        raise _invalid(f"retrieval must be one of {', '.join(RETRIEVAL)}; got {retrieval!r}", "retrieval")
    if fusion not in FUSION:
        raise _invalid(f"fusion must be convex, rrf or '' (the gateway's default); got {fusion!r}", "fusion")
    for name, v in (("k", k), ("window", window), ("rrf_k", rrf_k), ("mrl_dim", mrl_dim),
                    ("rerank_depth", rerank_depth)):
        if v < 0:
            raise _invalid(f"{name} must be >= 0 (0 = the gateway's default); got {v}", name)
    req = pb.SearchRequest(
        query=query, mode=pb.MODE_PRECISION, k=k, candidate_window=window,
        retrieval=RETRIEVAL[retrieval], fusion=FUSION[fusion], rrf_k=rrf_k, mrl_dim=mrl_dim,
        filters=_filters(filters), no_cache=no_cache, nprobe=nprobe, ef_search=ef_search, write_token=write_token,
        rerank_depth=rerank_depth,
    )
    if rerank is not None:
        req.rerank = rerank
    return _with_vector(req, vector, vector_model)


def bulk_request(query: str, *, threshold: float, page_size: int = 0, max_results: int = 0, mrl_dim: int = 0,
                 filters: Mapping[str, Any] | None = None, nprobe: int = 0, ef_search: int = 0,
                 cursor: str = "", write_token: str = "", vector: Sequence[float] | None = None,
                 vector_model: str = "") -> pb.BulkSearchRequest:
    """A BulkSearchRequest: every document with cosine similarity >= threshold, best first, in pages."""
    if not -1.0 <= threshold <= 1.0:
        raise _invalid(f"threshold must be a cosine similarity in [-1, 1]; got {threshold}", "threshold")
    for name, v in (("page_size", page_size), ("max_results", max_results), ("mrl_dim", mrl_dim)):
        if v < 0:
            raise _invalid(f"{name} must be >= 0 (0 = the gateway's default); got {v}", name)
    return _with_vector(pb.BulkSearchRequest(
        query=query, mode=pb.MODE_BULK, threshold=threshold, page_size=page_size, max_results=max_results,
        mrl_dim=mrl_dim, filters=_filters(filters), nprobe=nprobe, ef_search=ef_search, cursor=cursor,
        write_token=write_token,
    ), vector, vector_model)


def _floats(vector: Sequence[float]) -> list[float]:
    tolist = getattr(vector, "tolist", None)  # numpy arrays: one C-level conversion
    return [float(x) for x in (tolist() if tolist else vector)]


def _with_vector(req, vector: Sequence[float] | None, vector_model: str):
    """Set a caller's query vector: dense retrieval then uses it and the embedder is skipped."""
    if vector is not None:
        req.query_vector.extend(_floats(vector))
        req.vector_model = vector_model
    return req


def _as_mapping(doc: Any) -> Mapping[str, Any]:
    if isinstance(doc, Document):
        return {"id": doc.id, "text": doc.text, "metadata": doc.metadata}
    if isinstance(doc, Mapping):
        return doc
    raise _invalid(f"a document must be a dict with id, text and optional metadata; got {type(doc).__name__}",
                   "documents")


def documents(docs: Iterable[Any]) -> list[pb.Document]:
    """Upsert documents as messages, checked first (so a split upsert never writes half of a bad batch).

    Each is a dict {"id": str, "text": str, "metadata": dict (optional), "vector": floats (optional: your own
    embedding)} or a `Document`.
    """
    out: list[pb.Document] = []
    seen: set[str] = set()
    for i, raw in enumerate(docs):
        d = _as_mapping(raw)
        doc_id = d.get("id")
        if doc_id is None or not str(doc_id).strip():
            raise _invalid(f"document {i} has no id", f"documents[{i}].id")
        doc_id = str(doc_id)
        if doc_id in seen:
            raise _invalid(f"id {doc_id!r} appears twice in one upsert", f"documents[{i}].id")
        seen.add(doc_id)
        text = d.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _invalid(f"document {doc_id!r} has no text", f"documents[{i}].text")
        meta = d.get("metadata") or {}
        if not isinstance(meta, Mapping):
            raise _invalid(f"document {doc_id!r}: metadata must be a dict", f"documents[{i}].metadata")
        msg = pb.Document(id=doc_id, text=text)
        if d.get("vector") is not None:
            msg.vector.extend(_floats(d["vector"]))
        if meta:
            struct = Struct()
            try:
                struct.update(dict(meta))
            except (ValueError, TypeError) as exc:
                raise _invalid(f"document {doc_id!r}: metadata is not JSON-like ({exc})",
                               f"documents[{i}].metadata") from None
            msg.metadata.CopyFrom(struct)
        out.append(msg)
    return out


def split_documents(docs: list[pb.Document], limits: Limits) -> list[list[pb.Document]]:
    """Consecutive chunks, each within max_write_docs documents and max_message_bytes bytes."""
    budget = int(limits.max_message_bytes * _MESSAGE_HEADROOM)
    chunks: list[list[pb.Document]] = []
    cur: list[pb.Document] = []
    size = 0
    for d in docs:
        n = d.ByteSize() + 8  # tag + length prefix of a repeated field, generously
        if cur and (len(cur) >= limits.max_write_docs or size + n > budget):
            chunks.append(cur)
            cur, size = [], 0
        cur.append(d)
        size += n
    if cur:
        chunks.append(cur)
    return chunks


def split_ids(ids: Iterable[str], limits: Limits) -> list[list[str]]:
    items = [str(i) for i in ids]
    step = max(1, limits.max_write_docs)
    return [items[i:i + step] for i in range(0, len(items), step)] or [[]]


def document_from_hit(h: pb.Hit) -> Document:
    from winnow.client.types import metadata_of

    return Document(id=h.id, text=h.text, metadata=metadata_of(h))
