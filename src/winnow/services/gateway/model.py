"""The gateway's domain types: what a search asks for and what it returns, free of protobuf and gRPC."""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from winnow.services.gateway.vectors import digest


class Mode(str, enum.Enum):
    PRECISION = "precision"
    BULK = "bulk"


class Fusion(str, enum.Enum):
    CONVEX = "convex"
    RRF = "rrf"


class Retrieval(str, enum.Enum):
    HYBRID = "hybrid"
    DENSE = "dense"
    LEXICAL = "lexical"

    @property
    def dense(self) -> bool:
        return self is not Retrieval.LEXICAL

    @property
    def lexical(self) -> bool:
        return self is not Retrieval.DENSE


@dataclass(frozen=True)
class SearchOptions:
    """A validated, normalised search request (defaults filled in)."""

    query: str
    mode: Mode = Mode.PRECISION
    k: int = 64
    window: int = 80
    rerank: bool = True
    rerank_depth: int = 0  # cascade: the reranker scores only the window's top N (0 = the reranker's setting)
    retrieval: Retrieval = Retrieval.HYBRID
    fusion: Fusion = Fusion.CONVEX
    rrf_k: int = 60
    mrl_dim: int = 0
    filters: tuple[tuple[str, Any], ...] = ()
    threshold: float = 0.0
    page_size: int = 256
    max_results: int = 0
    nprobe: int = 0
    ef_search: int = 0
    no_cache: bool = False
    # Read-your-writes (a decoded write token): the layout it was issued in and (partition, sequence) pairs.
    token_layout: str = ""
    token_seqs: tuple[tuple[int, int], ...] = ()
    # A caller's query vector (unit, float32; see vectors.py): dense retrieval uses it instead of embedding `query`.
    vector: np.ndarray | None = field(default=None, compare=False)

    def cache_material(self) -> dict[str, Any]:
        """Everything that changes the answer (not no_cache, not the token: served-at sequences key the data);
        a caller's vector by its hash."""
        d = asdict(self)
        for k in ("no_cache", "token_layout", "token_seqs"):
            d.pop(k)
        d["vector"] = digest(self.vector)
        d["mode"] = self.mode.value
        d["retrieval"] = self.retrieval.value
        d["fusion"] = self.fusion.value
        d["filters"] = sorted([f, json.dumps(v, sort_keys=True)] for f, v in self.filters)
        return d


@dataclass
class Candidate:
    """One document from the first stage, with its evidence."""

    id: str
    text: str = ""
    metadata_json: str = ""
    dense_score: float | None = None
    lexical_score: float | None = None
    dense_rank: int = 0
    lexical_rank: int = 0
    first_stage_rank: int = 0
    first_stage_score: float = 0.0
    rerank_score: float | None = None
    ltr_score: float | None = None  # the optional LTR stage's score (gateway/ltr.py); the hit's score when set

    @property
    def score(self) -> float:
        if self.ltr_score is not None:
            return self.ltr_score
        return self.rerank_score if self.rerank_score is not None else self.first_stage_score


@dataclass
class Coverage:
    asked: int = 0
    answered: int = 0
    failed: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.answered / self.asked if self.asked else 1.0

    @property
    def complete(self) -> bool:
        return self.answered == self.asked


@dataclass
class SearchResult:
    hits: list[Candidate]
    coverage: Coverage
    reranked: bool
    rerank_skipped_reason: str = ""
    cache_hit: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)
    model: str = ""
    reranker: str = ""
    served_at: str = ""          # the log sequence of every shard that answered (write-token form)
    consistency_unmet: str = ""  # why the request's write token could not be honoured ("" = it was, or none)
    served_seqs: dict[int, int] = field(default_factory=dict)  # served_at as numbers (complete answers only)
    dense_skipped_reason: str = ""  # hybrid answered from BM25 alone: why (embedder down or late)
    # Set on a cache hit: the answer in the encoded form the cache stores (see SearchCore's `encode`); the
    # fields above are then left empty and the edge serves the payload as it is.
    payload: bytes | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "hits": [asdict(h) for h in self.hits],
                "coverage": asdict(self.coverage),
                "reranked": self.reranked,
                "rerank_skipped_reason": self.rerank_skipped_reason,
                "model": self.model,
                "reranker": self.reranker,
                "served_at": self.served_at,
                "dense_skipped_reason": self.dense_skipped_reason,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> "SearchResult":
        d = json.loads(raw)
        return cls(
            hits=[Candidate(**h) for h in d["hits"]],
            coverage=Coverage(**d["coverage"]),
            reranked=d["reranked"],
            rerank_skipped_reason=d["rerank_skipped_reason"],
            model=d["model"],
            reranker=d["reranker"],
            served_at=d.get("served_at", ""),
            dense_skipped_reason=d.get("dense_skipped_reason", ""),
        )


@dataclass
class WriteDocument:
    id: str
    text: str
    metadata_json: str = ""
    vector: np.ndarray | None = None  # the caller's (unit) vector; None = embed `text`


def stable_digest(material: Any) -> str:
    return hashlib.blake2b(json.dumps(material, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()
