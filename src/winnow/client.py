"""A small synchronous Python client for Winnow's public gateway API.

    from winnow.client import WinnowClient
    with WinnowClient("127.0.0.1:50050") as w:
        w.upsert([{"id": "a", "text": "aspirin lowers fever", "metadata": {"year": 2020}}])
        for hit in w.search("does aspirin reduce fever?", k=10).hits:
            print(hit.id, hit.score)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.api.gateway.v1 import gateway_pb2_grpc
from winnow.rpc.protovalues import to_value

_FUSION = {"": pb.FUSION_UNSPECIFIED, "convex": pb.FUSION_CONVEX, "rrf": pb.FUSION_RRF}
_RETRIEVAL = {"hybrid": pb.RETRIEVAL_HYBRID, "dense": pb.RETRIEVAL_DENSE, "lexical": pb.RETRIEVAL_LEXICAL}


def _filters(filters: Mapping[str, Any] | None) -> list[pb.Filter]:
    return [pb.Filter(field=field, equals=to_value(value)) for field, value in (filters or {}).items()]


def search_request(query: str, *, k: int = 0, window: int = 0, rerank: bool | None = None,
                   retrieval: str = "hybrid",
                   mrl_dim: int = 0, filters: Mapping[str, Any] | None = None, threshold: float = 0.0,
                   page_size: int = 0, max_results: int = 0, no_cache: bool = False, bulk: bool = False,
                   rrf_k: int = 0, fusion: str = "", write_token: str = "", vector: Sequence[float] | None = None,
                   vector_model: str = "") -> pb.SearchRequest:
    """Build a SearchRequest from keyword options (retrieval: hybrid, dense or lexical; fusion: convex or rrf,
    "" = the gateway's default; rerank: None = the gateway's default, on when there is query text; write_token:
    an Upsert/Delete's token, to read that write). `vector`: your own query vector (see `with_query_vector`)."""
    if retrieval not in _RETRIEVAL:
        raise ValueError(f"retrieval must be one of {sorted(_RETRIEVAL)}")
    if fusion not in _FUSION:
        raise ValueError(f"fusion must be one of {sorted(_FUSION)}")
    req = pb.SearchRequest(
        query=query, mode=pb.MODE_BULK if bulk else pb.MODE_PRECISION, k=k, candidate_window=window,
        retrieval=_RETRIEVAL[retrieval], mrl_dim=mrl_dim, filters=_filters(filters),
        threshold=threshold, page_size=page_size, max_results=max_results, no_cache=no_cache, rrf_k=rrf_k,
        fusion=_FUSION[fusion], write_token=write_token,
    )
    if rerank is not None:
        req.rerank = rerank
    return with_query_vector(req, vector, vector_model)


# -- bring your own vectors (issue 14) ----------------------------------------------------------------------------
def with_query_vector(req: pb.SearchRequest, vector: Sequence[float] | None, vector_model: str = ""):
    """Set a caller's query vector (any float sequence or numpy array) on a SearchRequest: dense retrieval then uses
    it and the embedder is skipped; `query` stays the text for BM25 (hybrid) and the reranker."""
    if vector is not None:
        req.query_vector.extend(_floats(vector))
        req.vector_model = vector_model
    return req


def _floats(vector: Sequence[float]) -> list[float]:
    tolist = getattr(vector, "tolist", None)  # numpy arrays: one C-level conversion
    return [float(x) for x in (tolist() if tolist else vector)]


def document(d: Mapping[str, Any]) -> pb.Document:
    """An upsert dict (id, text, optional metadata dict, optional vector) as a Document."""
    doc = pb.Document(id=str(d["id"]), text=d["text"],
                      metadata_json=json.dumps(d["metadata"]) if d.get("metadata") else "")
    if d.get("vector") is not None:
        doc.vector.extend(_floats(d["vector"]))
    return doc


class WinnowClient:
    """Blocking client. Every call has a deadline (`timeout`, seconds)."""

    def __init__(self, target: str = "127.0.0.1:50050", timeout: float = 30.0, token: str = "",
                 max_message_bytes: int = 64 * 1024 * 1024, tls_ca: str = "", tls_cert: str = "",
                 tls_key: str = "", tls_server_name: str = "") -> None:
        """`tls_ca` (a PEM file) turns TLS on; `tls_cert` + `tls_key` add a client certificate (mTLS)."""
        self.target = target
        self.timeout = timeout
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        if tls_ca:
            from pathlib import Path

            creds = grpc.ssl_channel_credentials(
                Path(tls_ca).read_bytes(), Path(tls_key).read_bytes() if tls_key else None,
                Path(tls_cert).read_bytes() if tls_cert else None)
            if tls_server_name:
                options.append(("grpc.ssl_target_name_override", tls_server_name))
            self.channel = grpc.secure_channel(target, creds, options=options)
        else:
            self.channel = grpc.insecure_channel(target, options=options)
        self.stub = gateway_pb2_grpc.GatewayStub(self.channel)

    def search(self, query: str, timeout: float | None = None, **options: Any) -> pb.SearchResponse:
        """Precision search: top k reranked hits. Options: see `search_request`."""
        return self.stub.Search(search_request(query, **options), timeout=timeout or self.timeout, metadata=self.metadata)

    def bulk_search(self, query: str, threshold: float, timeout: float | None = None,
                    **options: Any) -> Iterator[pb.BulkSearchPage]:
        """Bulk ("find all") search: every document with similarity >= threshold, page by page."""
        req = search_request(query, threshold=threshold, bulk=True, **options)
        yield from self.stub.BulkSearch(req, timeout=timeout or self.timeout, metadata=self.metadata)

    def upsert(self, documents: Iterable[Mapping[str, Any]], timeout: float | None = None,
               vector_model: str = "") -> pb.UpsertResponse:
        """documents: dicts with id, text, optional metadata (a dict) and optional vector (your own embedding;
        `vector_model` names the model that made it, "" = the collection's)."""
        req = pb.UpsertRequest(documents=[document(d) for d in documents], vector_model=vector_model)
        return self.stub.Upsert(req, timeout=timeout or self.timeout, metadata=self.metadata)

    def delete(self, ids: Iterable[str], timeout: float | None = None) -> pb.DeleteResponse:
        return self.stub.Delete(pb.DeleteRequest(ids=list(ids)), timeout=timeout or self.timeout, metadata=self.metadata)

    def get(self, ids: Iterable[str], timeout: float | None = None) -> pb.GetResponse:
        return self.stub.Get(pb.GetRequest(ids=list(ids)), timeout=timeout or self.timeout, metadata=self.metadata)

    def info(self, timeout: float | None = None) -> pb.ClusterInfoResponse:
        return self.stub.ClusterInfo(pb.ClusterInfoRequest(), timeout=timeout or self.timeout, metadata=self.metadata)

    def healthy(self, timeout: float = 2.0) -> bool:
        """True when the gateway's grpc.health.v1 reports SERVING."""
        try:
            resp = health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
        return resp.status == health_pb2.HealthCheckResponse.SERVING

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "WinnowClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
