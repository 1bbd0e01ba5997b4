"""promtool checks of the Prometheus rules and scrape configs (skipped when promtool is not installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy/prometheus"
RULES = sorted((PROM / "rules").glob("*.yml"))

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool is not installed (apt-get install -y prometheus)"
)


def _promtool(*args: str) -> str:
    proc = subprocess.run(["promtool", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"promtool {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_rules_pass_promtool_check():
    assert RULES
    out = _promtool("check", "rules", *map(str, RULES))
    assert out.count("SUCCESS") == len(RULES)


def test_alerts_fire_on_synthetic_series():
    """deploy/prometheus/tests: each alert fires on series that should trigger it, and not on a healthy baseline."""
    _promtool("test", "rules", str(PROM / "tests/winnow.rules.test.yml"))


def test_issue_alerts_exist():
    alerts = {r["alert"] for p in RULES for g in yaml.safe_load(p.read_text())["groups"] for r in g["rules"]
              if "alert" in r}
    assert {"WinnowHighErrorRate", "WinnowSearchLatencyP99High", "WinnowShardDown", "WinnowSearchCoverageBelowOne",
            "WinnowRerankFallbackHigh", "WinnowCacheHitRateCollapse", "WinnowQueueSaturation"} <= alerts


def test_compose_scrape_config(tmp_path):
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    config["rule_files"] = [str(p) for p in RULES]  # the container path, pointed at the repo: checks them too
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    _promtool("check", "config", str(tmp_path / "prometheus.yml"))


def test_kubernetes_scrape_config(tmp_path):
    """Debian's Prometheus is built without Kubernetes discovery, so the pod discovery is swapped for a static
    target; the relabelling (regexes, target labels) is what this checks."""
    config = yaml.safe_load((PROM / "prometheus-k8s.yml").read_text())
    config["rule_files"] = [str(p) for p in RULES]
    for job in config["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
        job["static_configs"] = [{"targets": ["127.0.0.1:9100"]}]
        labels = {r.get("target_label") for r in job["relabel_configs"]}
        assert {"namespace", "pod", "job"} <= labels, "prometheus-adapter needs namespace and pod labels"
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    _promtool("check", "config", str(tmp_path / "prometheus.yml"))
