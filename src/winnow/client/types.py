"""Typed results: plain dataclasses built from the gateway's responses (no protobuf in user code).

Every result keeps the response it came from as `raw` (not compared, not printed), so fields added to the API
later are reachable before this module names them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.rpc.protovalues import struct_to_dict

#: The per-stage timings the gateway reports, in pipeline order.
STAGES = ("cache", "embed", "search", "merge", "fusion", "rerank", "total")


def metadata_of(msg: Any) -> dict[str, Any]:
    """A Hit's metadata: the Struct field, or (older gateways) the JSON text."""
    if msg.HasField("metadata"):
        return struct_to_dict(msg.metadata)
    return json.loads(msg.metadata_json) if msg.metadata_json else {}


@dataclass(frozen=True)
class StageTimings:
    """Milliseconds spent in each stage of one request, as the gateway measured them (None = stage not run)."""

    cache: float | None = None
    embed: float | None = None
    search: float | None = None
    merge: float | None = None
    fusion: float | None = None
    rerank: float | None = None
    total: float | None = None
    other: dict[str, float] = field(default_factory=dict)  # stages this client version does not name

    @classmethod
    def from_map(cls, timings: Any) -> "StageTimings":
        known = {k: float(v) for k, v in timings.items() if k in STAGES}
        return cls(**known, other={k: float(v) for k, v in timings.items() if k not in STAGES})

    def as_dict(self) -> dict[str, float]:
        """Only the stages that ran, in pipeline order, then the others."""
        out = {s: getattr(self, s) for s in STAGES if getattr(self, s) is not None}
        out.update(self.other)
        return out


@dataclass(frozen=True)
class Coverage:
    """How many shards answered. A search that left some out still answers; `failed_shards` says why."""

    shards_asked: int = 0
    shards_answered: int = 0
    failed_shards: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return self.shards_answered == self.shards_asked

    @classmethod
    def from_proto(cls, c: pb.Coverage) -> "Coverage":
        return cls(c.shards_asked, c.shards_answered, tuple(c.failed_shards))


@dataclass(frozen=True)
class Hit:
    """One result. `score` is the final score (the rerank score when reranked); the rest tell each stage."""

    id: str
    score: float
    text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    first_stage_rank: int = 0          # 1-based rank after fusion
    first_stage_score: float = 0.0     # fused or dense score
    rerank_score: float | None = None  # None: not reranked
    dense_rank: int = 0                # 0 = not in the dense list
    lexical_rank: int = 0              # 0 = not in the BM25 list

    @classmethod
    def from_proto(cls, h: pb.Hit) -> "Hit":
        return cls(
            id=h.id, score=h.score, text=h.text, metadata=metadata_of(h), first_stage_rank=h.first_stage_rank,
            first_stage_score=h.first_stage_score, rerank_score=h.rerank_score if h.HasField("rerank_score") else None,
            dense_rank=h.dense_rank, lexical_rank=h.lexical_rank,
        )

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "score": self.score, "text": self.text, "metadata": self.metadata,
                "first_stage_rank": self.first_stage_rank, "first_stage_score": self.first_stage_score,
                "rerank_score": self.rerank_score, "dense_rank": self.dense_rank, "lexical_rank": self.lexical_rank}


@dataclass(frozen=True)
class SearchResult:
    """A precision search: the top k, reranked unless `reranked` is False (then `rerank_skipped_reason` says why)."""

    hits: list[Hit]
    coverage: Coverage
    reranked: bool
    rerank_skipped_reason: str
    cache_hit: bool
    timings: StageTimings
    request_id: str
    model: str
    reranker: str
    served_at: str = ""          # the log position every answering shard was at (write-token form)
    consistency_unmet: str = ""  # why the request's write_token could not be honoured ("" = it was, or none)
    dense_skipped_reason: str = ""  # why the dense list was skipped (embedder down: answered from BM25 alone)
    raw: pb.SearchResponse = field(repr=False, compare=False, default_factory=pb.SearchResponse)

    @property
    def timings_ms(self) -> dict[str, float]:
        """The per-stage timings as a dict (only the stages that ran)."""
        return self.timings.as_dict()

    @classmethod
    def from_proto(cls, r: pb.SearchResponse) -> "SearchResult":
        return cls(
            hits=[Hit.from_proto(h) for h in r.hits], coverage=Coverage.from_proto(r.coverage), reranked=r.reranked,
            rerank_skipped_reason=r.rerank_skipped_reason, cache_hit=r.cache_hit,
            timings=StageTimings.from_map(r.timings_ms), request_id=r.request_id, model=r.model, reranker=r.reranker,
            served_at=r.served_at, consistency_unmet=r.consistency_unmet, dense_skipped_reason=r.dense_skipped_reason,
            raw=r,
        )

    def to_json(self) -> dict[str, Any]:
        return {"hits": [h.to_json() for h in self.hits], "coverage": _coverage_json(self.coverage),
                "reranked": self.reranked, "rerank_skipped_reason": self.rerank_skipped_reason,
                "cache_hit": self.cache_hit, "timings_ms": self.timings_ms, "request_id": self.request_id,
                "model": self.model, "reranker": self.reranker, "served_at": self.served_at,
                "consistency_unmet": self.consistency_unmet, "dense_skipped_reason": self.dense_skipped_reason}


@dataclass(frozen=True)
class BulkPage:
    """One streamed page of a bulk search. `cursor` resumes the stream after this page."""

    hits: list[Hit]
    page: int
    last: bool
    total: int
    coverage: Coverage
    timings: StageTimings
    request_id: str
    cursor: str
    served_at: str = ""
    consistency_unmet: str = ""
    raw: pb.BulkSearchPage = field(repr=False, compare=False, default_factory=pb.BulkSearchPage)

    @property
    def timings_ms(self) -> dict[str, float]:
        return self.timings.as_dict()

    @classmethod
    def from_proto(cls, p: pb.BulkSearchPage) -> "BulkPage":
        return cls(hits=[Hit.from_proto(h) for h in p.hits], page=p.page, last=p.last, total=p.total,
                   coverage=Coverage.from_proto(p.coverage), timings=StageTimings.from_map(p.timings_ms),
                   request_id=p.request_id, cursor=p.cursor, served_at=p.served_at,
                   consistency_unmet=p.consistency_unmet, raw=p)


@dataclass(frozen=True)
class WriteResult:
    """An upsert or delete, possibly sent as several requests (`requests`) to fit the server's limits."""

    count: int                 # documents upserted / deleted
    requests: int              # RPCs it took
    request_ids: tuple[str, ...]
    timings_ms: dict[str, float]  # summed over the requests
    write_token: str = ""      # pass to search(write_token=...) to read this write (covers every request)
    raw: tuple[Any, ...] = field(repr=False, compare=False, default=())

    @property
    def upserted(self) -> int:
        return self.count

    @property
    def deleted(self) -> int:
        return self.count


@dataclass(frozen=True)
class Document:
    """A stored document, as Get returns it."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GetResult:
    documents: list[Document]
    missing: list[str]


@dataclass(frozen=True)
class ReplicaInfo:
    address: str
    healthy: bool
    count: int
    applied_seq: int
    error: str


@dataclass(frozen=True)
class ShardInfo:
    address: str
    healthy: bool
    count: int
    generation: int
    index_factory: str
    error: str
    replicas: list[ReplicaInfo] = field(default_factory=list)


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (ClusterInfo.limits); the client splits writes to fit."""

    max_write_docs: int = 1000
    max_message_bytes: int = 32 * 1024 * 1024
    max_doc_bytes: int = 1 << 20
    max_k: int = 1000
    max_window: int = 1000
    max_page_size: int = 10_000
    max_bulk_results: int = 100_000
    max_query_chars: int = 4096

    @classmethod
    def from_proto(cls, lim: pb.ServerLimits) -> "Limits":
        d = cls()
        return cls(**{f: (getattr(lim, f) or getattr(d, f)) for f in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ClusterInfo:
    """What the gateway serves: shards, models, document count, cache, limits and versions."""

    shards: list[ShardInfo]
    embedder_model: str
    embedder_device: str
    reranker_model: str
    reranker_scorer: str
    reranker_device: str
    documents: int
    cache: str
    limits: Limits
    version: str
    api_version: str
    layout: str = ""
    vector_model: str = ""  # the model the collection's vectors come from (what a caller's vector_model must name)
    dimension: int = 0      # the collection's vector dimension
    raw: pb.ClusterInfoResponse = field(repr=False, compare=False, default_factory=pb.ClusterInfoResponse)

    @classmethod
    def from_proto(cls, r: pb.ClusterInfoResponse) -> "ClusterInfo":
        return cls(
            shards=[ShardInfo(s.address, s.healthy, s.count, s.generation, s.index_factory, s.error,
                              [ReplicaInfo(x.address, x.healthy, x.count, x.applied_seq, x.error) for x in s.replicas])
                    for s in r.shards],
            embedder_model=r.embedder_model, embedder_device=r.embedder_device, reranker_model=r.reranker_model,
            reranker_scorer=r.reranker_scorer, reranker_device=r.reranker_device, documents=r.documents,
            cache=r.cache, limits=Limits.from_proto(r.limits) if r.HasField("limits") else Limits(),
            version=r.version, api_version=r.api_version, layout=r.layout, vector_model=r.vector_model,
            dimension=r.dimension, raw=r,
        )

    def to_json(self) -> dict[str, Any]:
        return {"documents": self.documents, "cache": self.cache, "version": self.version,
                "api_version": self.api_version, "layout": self.layout, "vector_model": self.vector_model,
                "dimension": self.dimension,
                "embedder": f"{self.embedder_model} ({self.embedder_device})",
                "reranker": f"{self.reranker_model} / {self.reranker_scorer} ({self.reranker_device})",
                "shards": [dataclasses.asdict(s) for s in self.shards], "limits": self.limits.__dict__}


def _coverage_json(c: Coverage) -> dict[str, Any]:
    return {"shards_asked": c.shards_asked, "shards_answered": c.shards_answered,
            "failed_shards": list(c.failed_shards)}
