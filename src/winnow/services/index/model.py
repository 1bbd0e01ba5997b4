"""Domain types of the index shard (no grpc, no FAISS): what the core takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: A filter value after validation: string, float (every JSON number) or bool.
Scalar = str | float | bool


@dataclass(frozen=True)
class Doc:
    """One document to upsert; `vector` is float32 of the shard's dimension (validated, maybe normalised)."""

    id: str
    vector: np.ndarray
    text: str = ""
    metadata_json: str = "{}"


@dataclass(frozen=True)
class FilterTerm:
    """metadata[field] == value (equality on a top-level scalar field)."""

    field: str
    value: Scalar


@dataclass(slots=True)
class Hit:
    id: str
    score: float
    text: str = ""
    metadata_json: str = ""


@dataclass
class SearchQuery:
    """A top-k search: dense when `vector` is set, lexical (BM25) when `text` is non-empty, or both."""

    vector: np.ndarray | None
    k: int
    text: str = ""
    lexical_k: int = 0
    filters: list[FilterTerm] = field(default_factory=list)
    nprobe: int = 0
    ef_search: int = 0
    coarse_dim: int = 0
    coarse_candidates: int = 0
    include_payloads: bool = False


@dataclass
class SearchResult:
    dense: list[Hit]
    lexical: list[Hit]
    generation: int
    timings_ms: dict[str, float]


@dataclass
class RangeQuery:
    """Every document with score >= threshold, best first, cut into pages."""

    vector: np.ndarray
    threshold: float
    page_size: int = 0
    filters: list[FilterTerm] = field(default_factory=list)
    coarse_dim: int = 0
    include_payloads: bool = False
    max_results: int = 0


@dataclass
class RangePage:
    hits: list[Hit]
    page: int
    last: bool
    total: int
    generation: int
    timings_ms: dict[str, float]


@dataclass
class WriteResult:
    count: int
    generation: int
    timings_ms: dict[str, float]


@dataclass
class ShardStats:
    shard_id: str
    count: int
    generation: int
    dimension: int
    index_factory: str
    trained: bool
    device: str


@dataclass
class ReplicaStatus:
    """Where a replica stands against its log partition."""

    partition: int
    replica_id: str
    layout: str
    caught_up: bool
    lag: int
    log_connected: bool
