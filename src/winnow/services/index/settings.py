"""Settings of one index shard: every field is an env var (`WINNOW_INDEX_<FIELD>`) and a CLI flag."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from winnow.common.limits import LimitSettings
from winnow.common.settings import ServiceSettings, comma_list
from winnow.services.index.model import ShardConfig


class IndexSettings(ServiceSettings, LimitSettings):
    """One replica of one shard: FAISS vectors + BM25 + payloads, fed by its partition of the document log."""

    model_config = SettingsConfigDict(**{**ServiceSettings.model_config, "env_prefix": "WINNOW_INDEX_"})

    shard_id: str = Field("0", description="Name of this shard, reported by Stats and used as the metrics label.")
    data_dir: str = Field(
        "./data/index-0", description="Directory of this replica's snapshots (created if missing; deleting it "
        "makes the replica rebuild from the log)."
    )
    log_url: str = Field(
        "nats://127.0.0.1:4222",
        description="NATS server(s) of the document log, comma-separated nats:// URLs (JetStream enabled).",
    )
    layout: str = Field("L0", description="Shard layout id: names the log streams this replica reads.")
    partition: int = Field(0, ge=0, description="The log partition (= shard index) this replica follows.")
    replica_id: str = Field("", description="Name of this replica, reported by Stats (default: shard_id).")
    log_stream_replicas: int = Field(
        1, ge=1, le=5, description="JetStream replicas of a partition stream, if this replica has to create it.")
    tombstone_ttl_s: int = Field(
        7 * 24 * 3600, ge=1,
        description="How long a delete's tombstone stays in the log. A snapshot older than this may have missed "
        "a delete whose tombstone is gone, so the replica discards it and rebuilds from the log instead.",
    )
    apply_batch: int = Field(1024, ge=1, description="Most log messages applied under one write lock.")
    max_consistency_wait_s: float = Field(
        2.0, ge=0,
        description="Longest a search with min_applied_seq waits for this replica to apply it (capped by its "
        "deadline) before failing FAILED_PRECONDITION so the gateway tries another replica.",
    )
    dim: int = Field(384, ge=1, le=65536, description="Vector dimension; every vector written or searched has it.")
    index_factory: str = Field(
        "HNSW32,Flat",
        description=(
            "FAISS index_factory string, inner-product metric. Default HNSW32,Flat: recall@80 >= 0.95 vs exact "
            "at the default ef_search on structured data (see docs/index.md). IVF/PQ types train automatically "
            "once `train_min_vectors` exist (or on Train); until then searches are exact."
        ),
    )
    normalize: bool = Field(
        True, description="L2-normalise stored and query vectors so inner product is cosine in [-1, 1]."
    )
    default_nprobe: int = Field(32, ge=1, description="IVF lists probed when a request leaves nprobe at 0.")
    default_ef_search: int = Field(128, ge=1, description="HNSW efSearch when a request leaves ef_search at 0.")
    train_min_vectors: int = Field(
        0,
        ge=0,
        description="Vectors needed before an untrained index (IVF, PQ) trains itself; 0 = 39 x nlist (FAISS's advice).",
    )
    max_k: int = Field(10_000, ge=1, description="Largest k (and lexical_k) a search may ask for.")
    default_page_size: int = Field(1000, ge=1, description="Hits per RangeSearch page when the request says 0.")
    max_page_size: int = Field(10_000, ge=1, description="Largest page_size a RangeSearch may ask for.")
    snapshot_every: int = Field(
        10_000, ge=1, description="Write a snapshot after this many applied log messages (a restart replays "
        "at most this many)."
    )
    compact_dead_fraction: float = Field(
        0.25, gt=0, le=1, description="At snapshot time, rebuild the index without deleted slots above this share."
    )
    fsync: bool = Field(
        True, description="fsync snapshot files before renaming them into place (off only for benchmarks)."
    )
    coarse_dims: Annotated[list[int], NoDecode] = Field(
        [64, 128], description="MRL sweep dimensions kept pre-normalised in memory (others are computed per request)."
    )
    coarse_factor: int = Field(
        8, ge=1, description="MRL coarse-to-fine: survivors refined at full dimension = coarse_factor x k by default."
    )
    coarse_range_margin: float = Field(
        0.1, ge=0, le=2, description="MRL range search: the coarse sweep keeps scores >= threshold - margin."
    )
    exact_filter_max: int = Field(
        20_000, ge=0, description="Filtered searches matching at most this many documents scan them exactly."
    )
    exact_filter_fraction: float = Field(
        0.2, ge=0, le=1,
        description="Filtered searches matching less than this share of the shard scan them exactly (graph/list "
        "indexes lose recall when most of the graph is excluded).",
    )
    bm25_max_staleness_s: float = Field(
        0.0, ge=0,
        description="BM25 rebuilds lazily on the next lexical search after upserts; a rebuild younger than this "
        "many seconds is reused (0 = searches always see every acknowledged write).",
    )
    search_threads: int = Field(2, ge=1, description="Threads running searches (FAISS, BM25) off the event loop.")
    inline_search_ms: float = Field(
        5.0, ge=0, description="Searches run on the event loop itself, without a thread hand-off, while recent "
        "ones took less than this (ms) and this one need not wait for a write or a BM25 rebuild; slower shards "
        "keep them on the search threads (an inline search holds the loop that long). Served p50 0.87x of the "
        "threaded path on a 20k-vector shard (docs/gateway.md); 2 ms flapped on a busy 2-core box where a "
        "5,000-document hybrid search takes 1.2-2.5 ms. 0 = always on a search thread.",
    )
    faiss_omp_threads: int = Field(
        1, ge=0,
        description="OpenMP threads per FAISS search (0 = FAISS default). 1 is right for batch-1 searches: "
        "concurrency comes from parallel requests, and OpenMP's spin-waiting is much slower on busy cores.",
    )
    use_gpu: bool = Field(True, description="Clone the index to GPU when faiss sees one and the type supports it.")

    @field_validator("coarse_dims", mode="before")
    @classmethod
    def _split(cls, value):
        """Accept "a,b" from env vars and flags as well as a JSON list."""
        return comma_list(value, int)

    def shard_config(self) -> ShardConfig:
        """The plain values the shard core takes (everything but the server's threads)."""
        values = {name: getattr(self, name) for name in ShardConfig.__dataclass_fields__}
        values["coarse_dims"] = tuple(values["coarse_dims"])
        return ShardConfig(**values)
