"""Gateway settings: env vars WINNOW_GATEWAY_<FIELD> or CLI flags --<field>."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from typing import Annotated, Literal

from pydantic_settings import NoDecode, SettingsConfigDict

from winnow.common.limits import LimitSettings
from winnow.common.settings import ServiceSettings, check_token, comma_list


class GatewaySettings(ServiceSettings, LimitSettings):
    """The public gateway; the input limits (LimitSettings) are the shards' own, checked here first."""

    model_config = SettingsConfigDict(**{**ServiceSettings.model_config, "env_prefix": "WINNOW_GATEWAY_"})

    embedder: str = Field("127.0.0.1:50051", description="Embedder address, host:port.")
    reranker: str = Field("127.0.0.1:50052", description="Reranker address, host:port; empty = no reranker.")
    shards: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1:50053"],
        description="Index shards in shard order (routing depends on it), comma-separated; one shard's replicas "
        "separated by '|': 'a:1|a:2,b:1|b:2'. With shard_dns, one host:port per shard whose A records are its "
        "replicas. Ignored when shard_registry is set.",
    )
    shard_registry: str = Field(
        "", description="Path of the local launcher's registry file (JSON: layout id and every shard's replica "
        "addresses); watched, so replicas that move or a new layout are picked up without a restart.",
    )
    shard_dns: bool = Field(
        False, description="Resolve every A/AAAA record of each shard's host (a Kubernetes headless Service) and "
        "treat each address as a replica; re-resolved every discovery_interval_s.",
    )
    discovery_interval_s: float = Field(5.0, gt=0, description="How often shard_dns names are re-resolved.")
    registry_poll_s: float = Field(0.2, gt=0, description="How often the shard_registry file is checked for a change.")
    layout: str = Field(
        "L0", pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Shard layout id for static and DNS discovery (the registry file names its own); write tokens "
        "carry it, so a token from another layout is recognised.",
    )
    hedge_after_ms: float = Field(
        0.0, ge=0, description="Ask a second replica of a shard when the first has not answered after this long "
        "(0 = no hedging: a second replica is asked only after an error, or once half the budget has gone).",
    )
    replica_eject_s: float = Field(
        0.25, gt=0, description="A replica that failed is skipped this long, doubling per consecutive failure.",
    )
    replica_eject_max_s: float = Field(5.0, gt=0, description="Longest ejection of a failing replica.")
    replica_reconnect_max_ms: int = Field(
        1000, ge=100, description="Longest reconnect backoff to a replica (a replica back on its address is "
        "found within this long; gRPC's default is 120 s).",
    )
    layout_switch_timeout_s: float = Field(
        60.0, gt=0, description="On a new layout, wait at most this long for every new shard to have a SERVING "
        "replica before switching searches to it.",
    )
    redis_url: SecretStr = Field(SecretStr("redis://127.0.0.1:6379/0"), description="Result-cache Redis URL.")
    cache: str = Field("auto", description="Result cache: auto (Redis if reachable, else in-process), redis, memory, off.")
    cache_ttl_s: int = Field(300, ge=1, description="Cache entry lifetime, seconds.")
    max_concurrent: int = Field(
        2, ge=0, description="Admission: searches (per method) running at once; the rest wait up to "
        "max_queue_wait_ms (and queue_wait_factor x the recent search time, and their deadline) or are refused at "
        "once with RESOURCE_EXHAUSTED + retry-after-ms. 2 measured best on the 2-core reference box (128 clients: "
        "admitted p99 2.9x unloaded, all reranked, refusals p99 0.1 s; 4: 8.4x; 1: 1.6x but a fifth of the "
        "answers): docs/hardening.md. Raise it with the downstream capacity; 0 = no gate.",
    )
    max_concurrent_first_stage: int = Field(
        8, ge=0, description="Admission for searches that are not reranked (rerank=false, or no reranker "
        "configured): their own gate, this many at once, so a burst of cheap first-stage searches is neither "
        "refused at the reranked searches' cap nor queued behind them. A first-stage search mostly waits on the "
        "shards, so more of them overlap; 8 measured against 2 on the 2-core reference box: docs/gateway.md. "
        "0 = they share the reranked searches' gate (max_concurrent).",
    )
    embedder_wait_s: float = Field(
        30.0, ge=0, description="At start-up, how long to wait for the embedder (its model version keys the cache) "
        "before serving anyway (hybrid searches then fall back to BM25, flagged).",
    )
    default_timeout_s: float = Field(
        10.0, gt=0, description="Deadline for a request whose caller set none (outgoing calls derive from it)."
    )
    default_k: int = Field(64, ge=1, description="Results returned when the request leaves k at 0.")
    max_k: int = Field(1000, ge=1, description="Largest k a precision search may ask for.")
    default_window: int = Field(80, ge=1, description="First-stage candidates reranked when the request says 0.")
    max_window: int = Field(1000, ge=1, description="Largest candidate window.")
    fusion: Literal["convex", "rrf"] = Field(
        "convex",
        description="Hybrid fusion when the request leaves it unset: convex (z-scored scores, alpha = dense_weight; "
        "best on SciFact train, docs/quality.md) or rrf (reciprocal rank fusion).",
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant when the request says 0.")
    dense_weight: float = Field(
        0.5, ge=0, le=1, description="Share of the dense list in fusion (BM25 gets the rest); 0.5 = equal."
    )
    rerank_batch_size: int = Field(
        80, ge=1,
        description="Candidates per reranker call (80 = one call for the default window); a smaller value "
        "splits the window into calls sent concurrently. Keep it >= the candidate window for "
        "scorers that normalise within a call (the default late-interaction scorer does): scores from "
        "different calls are then not comparable. Smaller values spread a cross-encoder over replicas.",
    )
    ltr_model: str = Field(
        "", description="A learning-to-rank model file from `winnow train ltr`: the final stage, ordering the reranked "
        "window by a learned combination of first-stage, reranker, length and metadata features ('' = off; a file "
        "that cannot be served refuses the start). Serve it at the window it was trained at (its --depth).",
    )
    bulk_page_size: int = Field(256, ge=1, description="Bulk hits per streamed page when the request says 0.")
    max_page_size: int = Field(10_000, ge=1, description="Largest bulk page a request may ask for.")
    max_bulk_results: int = Field(100_000, ge=1, description="Cap on hits one bulk search returns.")
    max_query_chars: int = Field(4096, ge=1, description="Longest query text accepted.")
    max_write_docs: int = Field(1000, ge=1, description="Most documents (or ids) in one Upsert/Delete/Get.")
    log_url: str = Field(
        "nats://127.0.0.1:4222",
        description="NATS server(s) of the document log, comma-separated nats:// URLs (JetStream enabled).")
    layout: str = Field("L0", description="Shard layout id: names the log streams writes go to.")
    log_stream_replicas: int = Field(
        1, ge=1, le=5, description="JetStream replicas of each partition stream when the gateway creates it "
        "(3 in Kubernetes: an acknowledged write is then on a quorum of disks).")
    tombstone_ttl_s: int = Field(
        7 * 24 * 3600, ge=1,
        description="Lifetime of a delete's tombstone in the log (then it compacts away); = the shards' setting.")
    log_connect_timeout_s: float = Field(
        2.0, gt=0, description="How long a write waits to connect to an unreachable log before UNAVAILABLE.")
    embed_batch_size: int = Field(64, ge=1, description="Texts per embedder call during upserts.")
    payloads: Literal["inline", "final"] = Field(
        "inline", description="Where hit payloads (text, metadata) come from: inline = every shard sends them with "
        "its candidate lists (one round trip; measured faster on loopback, docs/gateway.md); final = candidates "
        "travel as ids and scores, and one Get per shard fetches the payloads of the hits returned (or reranked) "
        "only: less bytes over a real network with long documents, one more round trip.")
    collection_model: str = Field(
        "", description="The model the collection's vectors come from, when callers bring their own vectors made "
        "by a model other than the embedder's ('' = the embedder's model). Callers' vector_model must name it; "
        "text-only documents and dense queries are then refused, since the embedder cannot make such vectors. "
        "The shards' dimension must be that model's.")

    internal_tls_ca_file: str = Field(
        "", description="PEM CA that signed the internal services' certificates: TLS on the gateway's hops to the "
        "embedder, reranker and shards (empty = plaintext).",
    )
    internal_tls_cert_file: str = Field("", description="PEM client certificate the gateway presents (mTLS).")
    internal_tls_key_file: str = Field("", description="PEM private key of internal_tls_cert_file.")
    internal_tls_server_name: str = Field(
        "", description="Name to verify on the internal services' certificates instead of each target's host.",
    )
    internal_token: SecretStr = Field(
        SecretStr(""), description="The gateway's own credential, sent as `authorization: Bearer` to the internal "
        "services (set their auth_token to it), so internal auth can be on.",
    )
    internal_token_file: str = Field("", description="File holding internal_token (wins over it).")

    @model_validator(mode="after")
    def _internal_secret(self) -> "GatewaySettings":
        if self.internal_token_file:
            self.internal_token = SecretStr(Path(self.internal_token_file).read_text().strip())
        check_token(self.internal_token.get_secret_value(), "internal_token")
        return self

    @field_validator("shards", mode="before")
    @classmethod
    def _split(cls, value):
        """Accept "a,b" from env vars and flags as well as a JSON list."""
        return comma_list(value, str)

    @field_validator("shards")
    @classmethod
    def _replicas(cls, value: list[str]) -> list[str]:
        """Every shard lists at least one host:port ('|' between replicas): a typo fails at start-up, clearly."""
        from winnow.services.gateway.discovery import parse_shards

        parse_shards(value)
        return value
