"""Domain types of the index shard (no grpc, no FAISS): what the core takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from winnow.common.limits import Limits


@dataclass(frozen=True)
class ShardConfig:
    """What one shard core needs, as plain values. `IndexSettings.shard_config()` builds it: the defaults and the
    meaning of every field are the settings' (one place), so there are none here."""

    shard_id: str
    data_dir: str
    dim: int
    index_factory: str
    normalize: bool
    default_nprobe: int
    default_ef_search: int
    train_min_vectors: int
    max_k: int
    default_page_size: int
    max_page_size: int
    payload_max_bytes: int
    max_id_bytes: int
    max_metadata_depth: int
    max_ef_search: int
    max_nprobe: int
    snapshot_every: int
    compact_dead_fraction: float
    fsync: bool
    coarse_dims: tuple[int, ...]
    coarse_factor: int
    coarse_range_margin: float
    exact_filter_max: int
    exact_filter_fraction: float
    bm25_max_staleness_s: float
    use_gpu: bool

    def limits(self) -> Limits:
        """The input limits (shared with the gateway: winnow.common.limits)."""
        return Limits(max_id_bytes=self.max_id_bytes, payload_max_bytes=self.payload_max_bytes,
                      max_metadata_depth=self.max_metadata_depth, max_ef_search=self.max_ef_search,
                      max_nprobe=self.max_nprobe)


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
    """A document with its score, as a search answers it (payload fields empty unless asked for)."""

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
    payload_top: int = 0  # > 0: payloads for the first payload_top hits of each list only (include_payloads ignored)


@dataclass
class ShardResult:
    """What one shard answers to a top-k search: its dense and lexical lists, best first, at a generation."""

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
    """A shard's counters (the gateway keeps the same concept, as it sees it, in `gateway.ports.ShardStats`)."""

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
