"""Build deploy/grafana/dashboards/winnow.json: `python deploy/grafana/build_dashboard.py > deploy/grafana/dashboards/winnow.json`.

The dashboard is generated so panels stay consistent (one datasource variable, one grid); a test checks that the
committed JSON matches this script and that every metric it names exists in winnow.common.metrics or is recorded by
deploy/prometheus/rules.
"""

from __future__ import annotations

import json
import sys

DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
WIDTH = 24


class Grid:
    """Lays panels left to right, wrapping at 24 columns; rows start a new line."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0
        self.next_id = 1
        self.panels: list[dict] = []

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"type": "row", "title": title, "id": self._id(), "collapsed": False,
                            "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": self.y}, "panels": []})
        self.y += 1

    def add(self, panel: dict, w: int = 8, h: int = 8) -> None:
        if self.x + w > WIDTH:
            self._newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)

    def _newline(self) -> None:
        self.y += self.row_h
        self.x = self.row_h = 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict:
    t = {"datasource": DS, "expr": expr, "legendFormat": legend or "__auto", "refId": ref, "range": not instant}
    if instant:
        t.update(instant=True, format="table")
    return t


def timeseries(title: str, targets: list[dict], unit: str = "short", desc: str = "", stack: bool = False) -> dict:
    return {
        "type": "timeseries", "title": title, "description": desc, "datasource": DS, "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, "custom": {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
            "stacking": {"mode": "normal" if stack else "none", "group": "A"}}}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }


def stat(title: str, expr: str, unit: str, desc: str = "", thresholds: list[tuple[str, float | None]] = ()) -> dict:
    steps = [{"color": c, "value": v} for c, v in (thresholds or [("green", None)])]
    return {
        "type": "stat", "title": title, "description": desc, "datasource": DS, "targets": [target(expr)],
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
                        "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area", "textMode": "auto"},
    }


def table(title: str, expr: str, desc: str = "") -> dict:
    return {
        "type": "table", "title": title, "description": desc, "datasource": DS,
        "targets": [target(expr, instant=True)],
        "transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True,
                                                                              "__name__": True}}}],
        "fieldConfig": {"defaults": {}, "overrides": []}, "options": {"showHeader": True},
    }


def quantiles(metric_prefix: str, legend: str) -> list[dict]:
    """p50/p95/p99 from the recording rules `<metric_prefix>:p50_5m`..."""
    return [target(f"{metric_prefix}:{q}_5m", f"{legend} {q}", ref) for q, ref in (("p50", "A"), ("p95", "B"), ("p99", "C"))]


def build() -> dict:
    g = Grid()
    g.row("Traffic and errors")
    g.add(stat("Search rate", f'sum(rate(winnow_requests_total{{service="gateway",method=~"Search|BulkSearch"}}[{RATE}]))',
               "reqps", "Searches per second at the gateway."), w=4, h=5)
    g.add(stat("Server error ratio (gateway)", 'max(service:winnow_request_errors:ratio_rate5m{service="gateway"}) or vector(0)',
               "percentunit", "Share of gateway RPCs failing server-side over 5 m.",
               [("green", None), ("orange", 0.01), ("red", 0.05)]), w=4, h=5)
    g.add(stat("Shard coverage", "min(job:winnow_search_coverage_ratio:mean_rate5m)", "percentunit",
               "Mean shards answered / shards asked per search; below 100% means partial results.",
               [("red", None), ("orange", 0.99), ("green", 1)]), w=4, h=5)
    g.add(stat("Cache hit ratio", "max(job:winnow_cache_requests:hit_ratio_rate5m)", "percentunit",
               "Result-cache hits / lookups over 5 m."), w=4, h=5)
    g.add(stat("Rerank fallback ratio", "max(job:winnow_rerank_fallback:ratio_rate5m) or vector(0)", "percentunit",
               "Precision searches served in first-stage order because the reranker failed or was late.",
               [("green", None), ("orange", 0.01), ("red", 0.05)]), w=4, h=5)
    g.add(stat("Index documents", "sum(winnow_index_documents)", "short", "Documents across all shards."), w=4, h=5)
    g.add(timeseries("Request rate by service and method", [
        target(f"sum by (service, method) (rate(winnow_requests_total[{RATE}]))", "{{service}} {{method}}")],
        "reqps"), w=12)
    g.add(timeseries("Errors by status", [
        target(f'sum by (service, code) (rate(winnow_requests_total{{code!="OK"}}[{RATE}]))', "{{service}} {{code}}")],
        "reqps", "Every non-OK final status, caller errors (INVALID_ARGUMENT, NOT_FOUND) included.", stack=True), w=12)
    g.add(timeseries("Server-side error ratio", [
        target("service:winnow_request_errors:ratio_rate5m", "{{service}}")], "percentunit"), w=8)
    g.add(timeseries("Failures by kind", [
        target(f"sum by (service, kind) (rate(winnow_failures_total[{RATE}]))", "{{service}} {{kind}}")], "ops"), w=8)
    g.add(timeseries("In-flight RPCs and admission rejections", [
        target("sum by (service) (winnow_inflight_requests)", "{{service}} in flight"),
        target(f"sum by (service) (rate(winnow_admission_rejected_total[{RATE}]))", "{{service}} rejected/s", "B")]),
        w=8)

    g.row("Latency")
    g.add(timeseries("RPC latency p50 / p95 / p99 (by service, method)",
                     quantiles("service_method:winnow_request_duration_seconds", "{{service}} {{method}}"), "s"), w=12)
    g.add(timeseries("Stage latency p50 / p95 / p99 (by service, stage)",
                     quantiles("service_stage:winnow_stage_duration_seconds", "{{service}} {{stage}}"), "s",
                     "Per-stage timings: queue, inference, embed, fanout, merge, rerank, cache, wal..."), w=12)
    g.add(timeseries("Gateway search stages p50 / p95 (cache, embed, search, merge, fusion, rerank, total)", [
        target('service_stage:winnow_stage_duration_seconds:p50_5m{service="gateway"}', "{{stage}} p50"),
        target('service_stage:winnow_stage_duration_seconds:p95_5m{service="gateway"}', "{{stage}} p95", "B")], "s",
        "Where a precision search spends its time, from the gateway's own per-stage histogram "
        "(winnow_stage_duration_seconds{service=\"gateway\"}); the same timings travel in every response."), w=12)
    g.add(timeseries("Index RPC latency p99 by shard", [
        target("shard_method:winnow_request_duration_seconds:p99_5m", "shard {{shard}} {{method}}")], "s",
        "Server-side latency of each index shard's RPCs (label shard on every index RPC metric)."), w=12)

    g.row("Model services (embedder, reranker)")
    g.add(timeseries("Queue time per request", [
        target("service:winnow_queue_time_seconds:mean_rate1m", "{{service}} mean"),
        target(f"histogram_quantile(0.99, sum by (service, le) (rate(winnow_queue_time_seconds_bucket[{RATE}])))",
               "{{service}} p99", "B")], "s", "What the model-service HPAs scale on (mean over 1 m)."), w=8)
    g.add(timeseries("Batch size", [
        target("service:winnow_batch_size:mean_rate5m", "{{service}} mean"),
        target(f"histogram_quantile(0.95, sum by (service, le) (rate(winnow_batch_size_bucket[{RATE}])))",
               "{{service}} p95", "B")], "short"), w=8)
    g.add(timeseries("Tokens per batch", [
        target("service:winnow_batch_tokens:mean_rate5m", "{{service}} mean")], "short",
        "Padded length x items per model batch."), w=8)
    g.add(timeseries("Queue depth", [target("sum by (service) (winnow_queue_depth)", "{{service}}")], "short"), w=8)
    g.add(timeseries("Inputs truncated to max length", [
        target(f"sum by (service) (rate(winnow_truncated_inputs_total[{RATE}]))", "{{service}}")], "ops"), w=8)
    g.add(table("Loaded models", "max by (service, model, device, dtype, scorer) (winnow_model_info)",
                "Model, device and dtype each model service runs."), w=8)

    g.row("Search: shards, cache, reranker")
    g.add(timeseries("Shard coverage", [
        target("job:winnow_search_coverage_ratio:mean_rate5m", "mean coverage"),
        target(f"histogram_quantile(0.05, sum by (le) (rate(winnow_search_coverage_ratio_bucket[{RATE}])))",
               "p5 coverage", "B")], "percentunit"), w=8)
    g.add(timeseries("Gateway calls to shards by outcome", [
        target(f"sum by (shard, outcome) (rate(winnow_shard_requests_total[{RATE}]))", "{{shard}} {{outcome}}")],
        "ops", stack=True), w=8)
    g.add(timeseries("Replicas per shard by state (gateway's view)", [
        target('max by (shard, state) (winnow_gateway_replicas{state!="serving"})', "{{shard}} {{state}}"),
        target('min by (shard) (winnow_gateway_replicas{state="serving"})', "{{shard}} serving", "B")], "short",
        "serving: picked first; unknown: health stream reconnecting; out: ejected, draining or down."), w=8)
    g.add(timeseries("Replica failovers by reason", [
        target(f"sum by (shard, reason) (rate(winnow_replica_failovers_total[{RATE}]))", "{{shard}} {{reason}}")],
        "ops", "Shard calls sent to a second replica: after an error, a hedge delay, or half the budget."), w=8)
    g.add(timeseries("Cache lookups and hit ratio", [
        target(f"sum by (result) (rate(winnow_cache_requests_total[{RATE}]))", "{{result}}"),
        target("job:winnow_cache_requests:hit_ratio_rate5m", "hit ratio", "B")], "ops"), w=8)
    g.add(timeseries("Rerank fallbacks by reason", [
        target(f"sum by (reason) (rate(winnow_rerank_fallback_total[{RATE}]))", "{{reason}}")], "ops", stack=True), w=8)
    g.add(timeseries("Hits per search (median, by mode)", [
        target(f"histogram_quantile(0.5, sum by (mode, le) (rate(winnow_search_results_bucket[{RATE}])))", "{{mode}}")],
        "short"), w=8)
    g.add(timeseries("Searches by mode", [
        target(f"sum by (mode) (rate(winnow_search_results_count[{RATE}]))", "{{mode}}")], "ops"), w=8)

    g.row("Index shards")
    g.add(timeseries("Documents per shard", [target("max by (shard) (winnow_index_documents)", "shard {{shard}}")],
                     "short"), w=8)
    g.add(timeseries("Write generation per shard", [
        target("max by (shard) (winnow_index_generation)", "shard {{shard}}")], "short",
        "Bumped by every write; part of the result-cache key."), w=8)
    g.add(table("Shard indexes", "max by (shard, index_factory, device) (winnow_index_info)",
                "FAISS index_factory and device per shard."), w=8)

    g.row("Build")
    g.add(table("Running builds", "max by (service, version, git_sha, embedder_model, reranker_model) "
                "(winnow_build_info)", "Package version, git commit and models of every service (value 1); more "
                "than one row per service means a rollout is in progress."), w=24)

    return {
        "uid": "winnow-overview",
        "title": "Winnow",
        "description": "Winnow two-stage search cluster: traffic, errors, latency per stage, model batching, shards, cache.",
        "tags": ["winnow"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [{
            "name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
            "current": {"selected": True, "text": "Prometheus", "value": "winnow-prometheus"},
            "hide": 0, "refresh": 1, "options": [],
        }]},
        "annotations": {"list": []},
        "links": [],
        "panels": g.panels,
    }


def render() -> str:
    """The dashboard JSON, as committed."""
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
