"""Every metric a dashboard panel, an alert/recording rule or the HPA adapter names must exist.

Static half (always runs): names extracted from deploy/grafana, deploy/prometheus/rules and
deploy/prometheus-adapter are checked against the sample names winnow.common.metrics exports, and recorded series
against the rules that record them. Live half (slow): the same names are looked up in the /metrics of a running
local cluster after real traffic, and a real Prometheus scrapes that cluster and answers a query.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from winnow.common import metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
RULE_FILES = sorted((ROOT / "deploy/prometheus/rules").glob("*.yml"))
ADAPTER = ROOT / "deploy/prometheus-adapter/values.yaml"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# --- PromQL name extraction -----------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NAME = re.compile(r"(?<![\w:$.])([a-zA-Z_:][a-zA-Z0-9_:]*)")


def promql_names(expr: str) -> set[str]:
    """Metric (and recorded-series) names in a PromQL expression, those starting `winnow_` or holding a colon.

    Label values (strings), label matchers, range selectors, grouping clauses and Grafana variables are removed
    first, so `sum by (service) (rate(winnow_x_total{code!="winnow_y"}[$__rate_interval]))` gives {winnow_x_total}.
    """
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"<<[^>]*>>", " ", text)  # prometheus-adapter templates
    return {n for n in _NAME.findall(text) if n.startswith("winnow_") or (":" in n and not n.endswith(":"))}


def exported_sample_names() -> set[str]:
    """Sample names the services expose, from every metric defined in winnow.common.metrics."""
    names: set[str] = set()
    for obj in vars(metrics).values():
        if not isinstance(obj, MetricWrapperBase):
            continue
        for family in obj.describe():
            if family.type == "counter":
                names |= {family.name + "_total", family.name + "_created"}
            elif family.type == "histogram":
                names |= {family.name + s for s in HISTOGRAM_SUFFIXES} | {family.name + "_created"}
            else:
                names.add(family.name)
    return names


def family_of(sample: str) -> str:
    """`winnow_x_seconds_bucket` -> `winnow_x_seconds`; `winnow_y_total` -> `winnow_y`."""
    for suffix in (*HISTOGRAM_SUFFIXES, "_total", "_created"):
        if sample.endswith(suffix):
            return sample[: -len(suffix)]
    return sample


def dashboard_exprs(path: Path) -> list[str]:
    def walk(panels):
        for p in panels:
            yield from (t["expr"] for t in p.get("targets", []) if t.get("expr"))
            yield from walk(p.get("panels", []))

    return list(walk(json.loads(path.read_text())["panels"]))


def rule_exprs() -> tuple[list[str], set[str]]:
    """(every rule expression, the names recording rules define)."""
    exprs, recorded = [], set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                exprs.append(rule["expr"])
                if "record" in rule:
                    recorded.add(rule["record"])
    return exprs, recorded


def adapter_rules() -> list[dict]:
    return yaml.safe_load(ADAPTER.read_text())["rules"]["custom"]


def referenced_metrics() -> dict[str, set[str]]:
    """Every raw winnow_* sample name named by a dashboard, rule or adapter query -> where it is named."""
    where: dict[str, set[str]] = {}
    exprs, recorded = rule_exprs()
    sources = [(str(p.relative_to(ROOT)), e) for p in DASHBOARDS for e in dashboard_exprs(p)]
    sources += [("deploy/prometheus/rules", e) for e in exprs]
    sources += [(str(ADAPTER.relative_to(ROOT)), r[k]) for r in adapter_rules() for k in ("seriesQuery", "metricsQuery")]
    for origin, expr in sources:
        for name in promql_names(expr):
            if name not in recorded:
                where.setdefault(name, set()).add(origin)
    return where


# --- static checks --------------------------------------------------------------------------------------------


def test_promql_extraction():
    expr = ('sum by (service, le) (rate(winnow_a_seconds_bucket{code!~"winnow_not|OK",service="gateway"}'
            '[$__rate_interval])) / on (job) group_left job:winnow_b:ratio_rate5m offset 1h > 0.5 and up == 0')
    assert promql_names(expr) == {"winnow_a_seconds_bucket", "job:winnow_b:ratio_rate5m"}
    assert promql_names("histogram_quantile(0.99, sum(rate(winnow_c_bucket[5m])) by (le))") == {"winnow_c_bucket"}
    assert promql_names("sum(rate(winnow_q_sum{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)") == {"winnow_q_sum"}
    assert family_of("winnow_requests_total") == "winnow_requests"


def test_every_dashboard_and_rule_metric_is_defined():
    exported = exported_sample_names()
    refs = referenced_metrics()
    assert len(refs) >= 15, f"suspiciously few metrics found: {sorted(refs)}"
    missing = {name: sorted(origins) for name, origins in refs.items() if name not in exported}
    assert not missing, f"named but not defined in winnow.common.metrics: {missing}"


def test_every_recorded_series_used_is_recorded():
    exprs, recorded = rule_exprs()
    used = {n for p in DASHBOARDS for e in dashboard_exprs(p) for n in promql_names(e) if ":" in n}
    used |= {n for e in exprs for n in promql_names(e) if ":" in n}
    assert used, "the dashboard reads no recording rule"
    assert used <= recorded, f"recorded series used but never recorded: {sorted(used - recorded)}"


def test_a_made_up_metric_is_caught():
    assert "winnow_made_up_total" not in exported_sample_names()
    assert "winnow_requests_total" in exported_sample_names()
    assert "winnow_queue_time_seconds_bucket" in exported_sample_names()


def test_hpa_custom_metric_is_what_the_adapter_serves():
    served = {r["name"]["as"] for r in adapter_rules()}
    hpa_metrics = set()
    for path in (ROOT / "deploy/k8s/base").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "HorizontalPodAutoscaler":
                for m in doc["spec"]["metrics"]:
                    if m["type"] == "Pods":
                        hpa_metrics.add(m["pods"]["metric"]["name"])
    assert hpa_metrics == {"winnow_queue_time_seconds_per_request"}
    assert hpa_metrics <= served


# --- live: a running local cluster ----------------------------------------------------------------------------

SERVICES = ("embedder", "reranker", "index", "gateway")
needs_cluster = pytest.mark.skipif(
    find_spec("winnow.cluster.launcher") is None
    or any(find_spec(f"winnow.services.{s}.__main__") is None for s in SERVICES),
    reason="the local cluster (winnow.cluster and every service's __main__) is not there yet",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from winnow.cluster.launcher import ClusterConfig, LocalCluster

    config = ClusterConfig(data_dir=tmp_path_factory.mktemp("cluster"), shards=2, gateway_port=_free_port(),
                           cache="memory")
    with LocalCluster(config) as c:
        _drive_traffic(c.gateway)
        yield c


def _drive_traffic(target: str) -> None:
    """One upsert, one precision search twice (a cache miss then a hit), one bulk search: the usual metrics get
    samples, not just their HELP lines."""
    import grpc

    from winnow.api.gateway.v1 import gateway_pb2, gateway_pb2_grpc

    docs = [gateway_pb2.Document(id=f"d{i}", text=t) for i, t in enumerate(
        ["aspirin lowers the risk of heart attack", "vitamin d and bone density", "a baby on a beach",
         "statins reduce cholesterol", "sleep deprivation impairs memory", "coffee and liver health"])]
    with grpc.insecure_channel(target) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        stub.Upsert(gateway_pb2.UpsertRequest(documents=docs), timeout=120)
        for _ in range(2):
            stub.Search(gateway_pb2.SearchRequest(query="heart attack prevention", k=3), timeout=120)
        list(stub.BulkSearch(gateway_pb2.BulkSearchRequest(query="baby", threshold=0.1), timeout=120))


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.read().decode()


def _families_and_samples(text: str) -> tuple[set[str], set[str]]:
    families, samples = set(), set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):  # counters are typed as `x_total` in the text format: normalise
            families.add(family_of(line.split()[2]))
        elif line and not line.startswith("#"):
            samples.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return families, samples


@pytest.mark.slow
@needs_cluster
def test_every_named_metric_is_exported_by_a_running_service(cluster):
    families, samples = set(), set()
    for name, url in cluster.metrics_urls().items():
        f, s = _families_and_samples(_scrape(url))
        families |= f
        samples |= s
    missing = {n: sorted(o) for n, o in referenced_metrics().items() if family_of(n) not in families}
    assert not missing, f"no running service exports: {missing}"
    # After real traffic the core series have samples, not just HELP/TYPE lines.
    for name in ("winnow_requests_total", "winnow_request_duration_seconds_bucket", "winnow_stage_duration_seconds_bucket",
                 "winnow_search_coverage_ratio_count", "winnow_shard_requests_total", "winnow_cache_requests_total",
                 "winnow_batch_size_bucket", "winnow_queue_time_seconds_count", "winnow_index_documents",
                 "winnow_index_generation", "winnow_model_info"):
        assert name in samples, f"{name} has no samples after a search"



@pytest.mark.slow
@needs_cluster
def test_build_info_everywhere_stage_histograms_shard_labels_and_zeroed_counters(cluster):
    pages = {name: _scrape(url) for name, url in cluster.metrics_urls().items()}
    for name, text in pages.items():
        assert re.search(r'^winnow_build_info\{[^}]*git_sha="[^"]+"[^}]*\} 1\.0$', text, re.M), name
    gateway = pages["gateway"]
    for stage in ("cache", "embed", "search", "merge", "fusion", "rerank", "total"):
        assert f'winnow_stage_duration_seconds_count{{service="gateway",shard="",stage="{stage}"}}' in gateway, stage
    assert re.search(r'^winnow_build_info\{embedder_model="[^"]+",.*reranker_model="[^"]+"', gateway, re.M)
    # Labelled counters exist at 0 before their first event.
    assert 'winnow_rerank_fallback_total{reason="deadline"} 0.0' in gateway
    assert 'winnow_failures_total{kind="internal",service="gateway",shard=""} 0.0' in gateway
    assert 'winnow_shard_requests_total{outcome="timeout",shard="shard-1"} 0.0' in gateway
    shard0 = next(text for name, text in pages.items() if name.startswith("shard-0"))
    assert re.search(r'^winnow_requests_total\{code="OK",method="Search",service="index",shard="shard-0"\} [1-9]',
                     shard0, re.M)


@pytest.mark.slow
@needs_cluster
@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed (apt-get install prometheus)")
def test_real_prometheus_scrapes_the_cluster_and_evaluates_the_rules(cluster, tmp_path):
    targets = [url.removeprefix("http://").removesuffix("/metrics") for url in cluster.metrics_urls().values()]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULE_FILES],
        "scrape_configs": [{"job_name": "winnow-local", "static_configs": [{"targets": targets}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    try:
        up = _poll(lambda: _query(base, f'count(up{{job="winnow-local"}} == 1) == {len(targets)}'), 60)
        assert int(float(up[0]["value"][1])) == len(targets)
        series = _poll(lambda: _query(base, 'sum by (service) (winnow_requests_total{service="gateway"})'), 60)
        assert float(series[0]["value"][1]) >= 3
        # The recording rules evaluate against real series (needs two scrapes for a rate).
        recorded = _poll(lambda: _query(base, 'service:winnow_requests:rate5m{service="gateway"}'), 60)
        assert recorded[0]["metric"]["job"] == "winnow-local"
        rules = json.loads(_get(f"{base}/api/v1/rules"))["data"]["groups"]
        bad = [(r["name"], r.get("lastError")) for g in rules for r in g["rules"] if r.get("health") == "err"]
        assert not bad, f"rules failing against live data: {bad}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return reply.read().decode()


def _query(base: str, promql: str) -> list:
    from urllib.parse import quote

    try:
        return json.loads(_get(f"{base}/api/v1/query?query={quote(promql)}"))["data"]["result"]
    except OSError:
        return []  # Prometheus still starting


def _poll(fetch, timeout_s: float):
    """Wait for a condition Prometheus reaches on its own schedule (scrape, rule evaluation)."""
    end = time.monotonic() + timeout_s
    while True:
        result = fetch()
        if result or time.monotonic() > end:
            assert result, "Prometheus never returned the series"
            return result
        time.sleep(0.5)
