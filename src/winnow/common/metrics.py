"""Every Prometheus metric Winnow exports, defined once.

Dashboards (deploy/grafana) and rules (deploy/prometheus) may only name metrics listed here; a test scrapes
the running cluster and checks that. Label `service` is one of embedder, reranker, index, gateway; label `shard`
is the index shard a process serves ("" elsewhere), so per-shard RPC latency needs no pod-name joins.

Labelled counters start at 0 for every label value known at start-up (`init_service`, `init_gateway`), so
`rate()` and absence alerts work before the first event.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

# Latency buckets from 0.5 ms to 30 s: cache hits are sub-millisecond, a CPU reranker is seconds.
_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "winnow_requests_total", "RPCs handled, by method and final gRPC status code.", ["service", "shard", "method", "code"]
)
REQUEST_LATENCY = Histogram(
    "winnow_request_duration_seconds", "Server-side RPC latency.", ["service", "shard", "method"], buckets=_LATENCY
)
STAGE_LATENCY = Histogram(
    "winnow_stage_duration_seconds",
    "Latency of one stage of a request (gateway: cache, embed, search, merge, fusion, rerank, total; models: "
    "queue, inference; index: wal, search...).",
    ["service", "shard", "stage"],
    buckets=_LATENCY,
)
INFLIGHT = Gauge("winnow_inflight_requests", "RPCs being handled now.", ["service", "shard"])
ADMISSION_REJECTED = Counter(
    "winnow_admission_rejected_total", "RPCs refused with RESOURCE_EXHAUSTED by admission control.",
    ["service", "shard"],
)
ADMISSION_WAIT = Histogram(
    "winnow_admission_wait_seconds", "Time an admitted or refused RPC waited for an admission slot.", ["service"],
    buckets=_LATENCY,
)
FAILURES = Counter(
    "winnow_failures_total", "Failures by kind (status name or dependency failure).", ["service", "shard", "kind"]
)
BUILD_INFO = Gauge(
    "winnow_build_info", "The running build (value 1): package version, git commit and the models it serves.",
    ["service", "version", "git_sha", "embedder_model", "reranker_model"],
)

#: Failure kinds every service may count (status names, lower case); initialised at 0.
FAILURE_KINDS = ("invalid_argument", "unauthenticated", "resource_exhausted", "unavailable", "deadline_exceeded",
                 "failed_precondition", "not_found", "internal")

# Model services (embedder, reranker): the micro-batcher.
BATCH_SIZE = Histogram(
    "winnow_batch_size", "Items per model batch.", ["service"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
)
BATCH_TOKENS = Histogram(
    "winnow_batch_tokens",
    "Tokens per model batch (padded length x items).",
    ["service"],
    buckets=(64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072),
)
QUEUE_DEPTH = Gauge("winnow_queue_depth", "Items waiting in the micro-batcher queue.", ["service"])
QUEUE_TIME = Histogram(
    "winnow_queue_time_seconds", "Time an item waits in the batcher queue before its batch runs.", ["service"],
    buckets=_LATENCY,
)
DROPPED_ITEMS = Counter(
    "winnow_dropped_items_total", "Batcher items dropped before compute because their caller left.", ["service"]
)
TRUNCATED_INPUTS = Counter(
    "winnow_truncated_inputs_total", "Inputs cut to the model's maximum sequence length.", ["service"]
)
MODEL_INFO = Gauge(
    "winnow_model_info", "The loaded model (value 1).", ["service", "model", "device", "dtype", "scorer"]
)

# Index shard.
INDEX_DOCUMENTS = Gauge("winnow_index_documents", "Documents in the shard.", ["shard"])
INDEX_GENERATION = Gauge(
    "winnow_index_generation", "Applied log sequence of the replica (its partition's stream sequence).", ["shard"])
INDEX_LOG_LAG = Gauge(
    "winnow_index_log_lag", "Log messages of the replica's partition not yet applied (at the last check).", ["shard"])
WRITES_LOGGED = Counter(
    "winnow_log_writes_total", "Documents the gateway appended to the document log, by outcome (acked, failed).",
    ["outcome"])
FEEDBACK_RECORDED = Counter(
    "winnow_feedback_judgments_total", "Judgments and clicks the gateway appended to the feedback log, by outcome "
    "(recorded, failed).", ["outcome"])
INDEX_INFO = Gauge("winnow_index_info", "The shard's index (value 1).", ["shard", "index_factory", "device"])

# Gateway.
CACHE_REQUESTS = Counter(
    "winnow_cache_requests_total", "Result-cache lookups by result: hit, miss, error (cache unreachable).", ["result"]
)
SHARD_REQUESTS = Counter(
    "winnow_shard_requests_total", "Gateway calls to shards by outcome (ok, error, timeout).", ["shard", "outcome"]
)
COVERAGE = Histogram(
    "winnow_search_coverage_ratio",
    "Shards answered / shards asked, per search.",
    buckets=(0.0, 0.25, 0.5, 0.75, 0.99, 1.0),
)
RERANK_FALLBACK = Counter(
    "winnow_rerank_fallback_total", "Searches served in first-stage order because the reranker failed.", ["reason"]
)
GATEWAY_REPLICAS = Gauge(
    "winnow_gateway_replicas",
    "Replicas of each shard as this gateway sees them, by state: serving, unknown (health stream reconnecting), "
    "out (ejected after failures, draining, or down).",
    ["shard", "state"],
)
REPLICA_FAILOVERS = Counter(
    "winnow_replica_failovers_total",
    "Shard calls sent to another replica: after an error (error), after the hedge delay (hedge), or once "
    "half the budget had gone (slow).",
    ["shard", "reason"],
)
SEARCH_RESULTS = Histogram(
    "winnow_search_results", "Hits returned per search, by mode.", ["mode"],
    buckets=(0, 1, 10, 64, 100, 1000, 10000, 100000),
)

DENSE_FALLBACK = Counter(
    "winnow_dense_fallback_total", "Hybrid searches answered from BM25 alone because the embedder failed."
)

ALL = [
    REQUESTS, REQUEST_LATENCY, STAGE_LATENCY, INFLIGHT, ADMISSION_REJECTED, ADMISSION_WAIT, FAILURES, BUILD_INFO,
    BATCH_SIZE, BATCH_TOKENS, QUEUE_DEPTH, QUEUE_TIME, TRUNCATED_INPUTS, MODEL_INFO,
    INDEX_DOCUMENTS, INDEX_GENERATION, INDEX_LOG_LAG, INDEX_INFO, WRITES_LOGGED, FEEDBACK_RECORDED,
    CACHE_REQUESTS, SHARD_REQUESTS, COVERAGE, RERANK_FALLBACK, DENSE_FALLBACK, SEARCH_RESULTS, REPLICA_FAILOVERS,
    GATEWAY_REPLICAS,
]


def start_metrics_server(port: int, host: str = "0.0.0.0") -> int:
    """Serve /metrics over HTTP; returns the bound port (port 0 picks a free one)."""
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_address[1])


class _Process:
    shard = ""  # the index shard this process serves; set once at start-up by `set_shard`
    build: dict[str, tuple[str, ...]] = {}
    shards: set[str] = set()


def set_shard(shard: str) -> None:
    """Label every RPC metric of this process with the shard it serves (index services only)."""
    _Process.shard = shard


def shard() -> str:
    return _Process.shard


def set_build_info(service: str, embedder_model: str = "", reranker_model: str = "") -> None:
    """winnow_build_info{service, version, git_sha, embedder_model, reranker_model} = 1 (one series per service)."""
    from winnow.common.buildinfo import VERSION, git_sha

    labels = (service, VERSION, git_sha(), embedder_model, reranker_model)
    old = _Process.build.get(service)
    if old == labels:
        return
    if old is not None:
        BUILD_INFO.remove(*old)
    BUILD_INFO.labels(*labels).set(1)
    _Process.build[service] = labels


def init_service(service: str, methods: list[str] = ()) -> None:
    """Create every labelled series of a service at 0: failures by kind, admission, OK requests per method."""
    s = _Process.shard
    ADMISSION_REJECTED.labels(service, s)
    INFLIGHT.labels(service, s)
    for kind in FAILURE_KINDS:
        FAILURES.labels(service, s, kind)
    for method in methods:
        REQUESTS.labels(service, s, method, "OK")
    if service in ("embedder", "reranker"):
        TRUNCATED_INPUTS.labels(service)


def init_gateway(shard_names: list[str]) -> None:
    """The gateway's labelled counters at 0: cache results, rerank fallbacks, shard calls by outcome."""
    for result in ("hit", "miss", "error"):
        CACHE_REQUESTS.labels(result)
    for reason in ("not_configured", "deadline", "error"):
        RERANK_FALLBACK.labels(reason)
    for outcome in ("recorded", "failed"):
        FEEDBACK_RECORDED.labels(outcome)
    for name in shard_names:
        init_shard(name)


def init_shard(name: str) -> None:
    """A shard's call outcomes at 0 (idempotent; shards found later by discovery get theirs on first use)."""
    if name not in _Process.shards:
        for outcome in ("ok", "error", "timeout"):
            SHARD_REQUESTS.labels(name, outcome)
        _Process.shards.add(name)


def observe_timings(service: str, timings_ms: dict[str, float]) -> None:
    """Record a response's per-stage timings (milliseconds) in the stage histogram."""
    for stage, ms in timings_ms.items():
        STAGE_LATENCY.labels(service, _Process.shard, stage).observe(ms / 1000.0)
