"""Static checks of the deployment files: Dockerfile, docker-compose, Kubernetes (kustomize + schemas), Grafana.

The tool-backed checks skip with a reason when the tool is missing; CI installs them with
`apt-get install -y docker-compose prometheus kubectl` (kubernetes-validate comes with the dev extra).
"""

from __future__ import annotations

import copy
import json
import re
import runpy
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PORTS = {"embedder": 50051, "reranker": 50052, "index": 50053, "gateway": 50050}
HEALTH_PORT = 8086
# Oldest Kubernetes the manifests target (gRPC probes GA and StatefulSet PVC retention from 1.27) and the newest
# schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.30.0", "1.37.0")


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (apt-get install -y docker-compose prometheus kubectl)")


def _run(*cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


# --- Dockerfile -----------------------------------------------------------------------------------------------


def _stages(text: str) -> dict[str, str]:
    """Stage name -> its body."""
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", text, flags=re.M | re.I)
    return dict(zip(parts[1::2], parts[2::2]))


def test_dockerfile_targets_user_and_torch_pin():
    text = (ROOT / "Dockerfile").read_text()
    stages = _stages(text)
    assert {"build-cpu", "build-gpu", "runtime", "cpu", "gpu"} <= set(stages)
    assert list(stages)[-1] == "cpu", "the default target (last stage) must be the CPU image"
    pin = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
               if d.startswith("torch"))
    version = pin.split("==")[1]
    assert f"ARG TORCH_VERSION={version}" in stages["build-cpu"], "Dockerfile torch differs from pyproject's pin"
    assert "--index-url https://download.pytorch.org/whl/cpu" in stages["build-cpu"]
    assert "faiss-gpu" in stages["build-gpu"] and "uninstall -y winnow faiss-cpu" in stages["build-gpu"]
    users = re.findall(r"^USER\s+(\S+)", stages["runtime"], flags=re.M)
    assert users and not users[-1].startswith(("0", "root")), "the runtime image must not run as root"
    assert "HF_HUB_OFFLINE=1" in stages["runtime"] and "TRANSFORMERS_OFFLINE=1" in stages["runtime"]
    for stage in ("cpu", "gpu"):
        assert "COPY --from=build-" in stages[stage] and "apt-get" not in stages[stage]


def test_every_package_is_installable_without_editable_mode():
    """The image installs the wheel (`pip install .`, setuptools `find`), which skips folders with no __init__.py:
    a module that only works in the editable dev install would be missing from the image."""
    folders = {p.parent for p in (ROOT / "src/winnow").rglob("*.py") if "__pycache__" not in p.parts}
    missing = sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").exists())
    assert not missing, f"add __init__.py to: {missing}"


def test_dockerignore_keeps_the_context_small():
    lines = (ROOT / ".dockerignore").read_text().split()
    assert lines[lines.index("*")] == "*" and "!src/" in lines and "!pyproject.toml" in lines


# --- docker-compose -------------------------------------------------------------------------------------------


def _compose(*files: str) -> dict:
    _need("docker-compose")
    args = [a for f in files for a in ("-f", f)]
    return yaml.safe_load(_run("docker-compose", *args, "config"))


def _winnow_kind(svc: dict) -> str | None:
    cmd = svc.get("command") or []
    module = next((c for c in cmd if c.startswith("winnow.services.")), "")
    return module.rsplit(".", 1)[-1] or None


def test_compose_config_accepts_the_file_and_wires_health_and_order():
    services = _compose("docker-compose.yml")["services"]
    kinds = {name: _winnow_kind(svc) for name, svc in services.items()}
    assert sorted(k for k in kinds.values() if k) == ["embedder", "gateway", "index", "index", "reranker"]
    assert {"redis", "prometheus", "grafana"} <= set(services)
    for name, kind in kinds.items():
        if kind is None:
            continue
        svc, prefix = services[name], f"WINNOW_{kind.upper()}_"
        env = svc["environment"]
        assert env[prefix + "HOST"] == "0.0.0.0" and env[prefix + "METRICS_PORT"] == "9100"
        assert int(env[prefix + "PORT"]) == PORTS[kind]
        assert svc["healthcheck"]["test"][-1] == f"127.0.0.1:{PORTS[kind]}", f"{name} checks the wrong port"
        assert "winnow.rpc.healthcheck" in svc["healthcheck"]["test"]
    shards = [n for n, k in kinds.items() if k == "index"]
    assert all(services[n]["environment"]["WINNOW_INDEX_SHARD_ID"] == n for n in shards)
    assert all(services[n]["volumes"] for n in shards), "shards need volumes for their data"
    gateway = services["gateway"]
    assert gateway["environment"]["WINNOW_GATEWAY_SHARDS"] == ",".join(f"{n}:50053" for n in sorted(shards))
    assert {d for d, c in gateway["depends_on"].items() if c["condition"] == "service_healthy"} == {
        "redis", "nats", "embedder", "reranker", *shards}
    # One JetStream node (on a volume) is the document log; shards and gateway point at it; shard i = partition i.
    assert "--jetstream" in services["nats"]["command"] and services["nats"]["volumes"]
    assert gateway["environment"]["WINNOW_GATEWAY_LOG_URL"] == "nats://nats:4222"
    for i, n in enumerate(sorted(shards)):
        env = services[n]["environment"]
        assert env["WINNOW_INDEX_LOG_URL"] == "nats://nats:4222" and env["WINNOW_INDEX_PARTITION"] == str(i)
        assert services[n]["depends_on"]["nats"]["condition"] == "service_healthy"


def test_compose_prometheus_scrapes_every_service():
    services = _compose("docker-compose.yml")["services"]
    winnow = {n for n, s in services.items() if _winnow_kind(s)}
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}
    assert {f"{n}:9100" for n in winnow} <= targets
    mounts = " ".join(str(v) for v in services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    for path in ("deploy/prometheus/prometheus.yml", "deploy/prometheus/rules", "deploy/grafana/provisioning",
                 "deploy/grafana/dashboards"):
        assert str(ROOT / path) in mounts


def test_compose_gpu_override_reserves_gpus_for_the_model_services():
    services = _compose("docker-compose.yml", "docker-compose.gpu.yml")["services"]
    for name in ("embedder", "reranker"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
        assert services[name]["build"]["target"] == "gpu"
    assert "deploy" not in services["gateway"]


# --- Kubernetes -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["cpu", "gpu"])
def rendered(request) -> tuple[str, list[dict]]:
    _need("kubectl")
    out = _run("kubectl", "kustomize", f"deploy/k8s/overlays/{request.param}")
    return request.param, [d for d in yaml.safe_load_all(out) if d]


def _by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_overlay_validates_against_kubernetes_schemas(rendered):
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    _, docs = rendered
    for version in K8S_VERSIONS:
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)
    broken = copy.deepcopy(_by_kind(docs, "Deployment")["gateway"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpcc"] = {"port": 1}
    with pytest.raises(kubernetes_validate.ValidationError):  # the check is not vacuous
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


def test_overlay_workloads_probes_and_discovery(rendered):
    overlay, docs = rendered
    deployments, statefulsets = _by_kind(docs, "Deployment"), _by_kind(docs, "StatefulSet")
    assert {"embedder", "reranker", "gateway"} <= set(deployments)
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("winnow-config"))
    data = config["data"]
    services, pdbs = _by_kind(docs, "Service"), _by_kind(docs, "PodDisruptionBudget")
    shards = sorted(n for n in statefulsets if n.startswith("winnow-index-"))
    assert shards == [f"winnow-index-{s}" for s in range(len(shards))] and len(shards) >= 2
    # One StatefulSet per shard, its replicas found through a headless Service of the same name (the gateway
    # resolves every A record: only ready, i.e. caught-up, replicas are listed).
    assert data["WINNOW_GATEWAY_SHARDS"].split(",") == [f"{n}:50053" for n in shards]
    assert data["WINNOW_GATEWAY_SHARD_DNS"] == "true"
    for s, name in enumerate(shards):
        sts = statefulsets[name]
        assert sts["spec"]["replicas"] >= 2 and sts["spec"]["serviceName"] == name
        headless = services[name]
        assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is False
        labels = sts["spec"]["selector"]["matchLabels"]
        assert labels["winnow.io/shard"] == str(s) and headless["spec"]["selector"] == labels
        assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
        env = {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["WINNOW_INDEX_PARTITION"]["value"] == str(s) and env["WINNOW_INDEX_SHARD_ID"]["value"] == f"shard-{s}"
        assert env["WINNOW_INDEX_REPLICA_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        # Two replicas of a shard never on one node; a drain takes at most one of them.
        anti = sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert anti[0]["topologyKey"] == "kubernetes.io/hostname" and anti[0]["labelSelector"]["matchLabels"] == labels
        assert pdbs[name]["spec"]["maxUnavailable"] == 1 and pdbs[name]["spec"]["selector"]["matchLabels"] == labels
    # The document log: a 3-node JetStream cluster, R3 streams, one node at a time, never two on one machine.
    nats = statefulsets["nats"]
    assert nats["spec"]["replicas"] == 3 and services["nats"]["spec"]["clusterIP"] == "None"
    assert pdbs["nats"]["spec"]["maxUnavailable"] == 1
    assert nats["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    conf = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("nats-config"))
    routes = [f"nats-route://nats-{i}.nats:6222" for i in range(3)]
    assert "jetstream" in conf["data"]["nats.conf"] and all(r in conf["data"]["nats.conf"] for r in routes)
    urls = ",".join(f"nats://nats-{i}.nats:4222" for i in range(3))
    for prefix in ("WINNOW_GATEWAY_", "WINNOW_INDEX_"):
        assert data[prefix + "LOG_URL"] == urls and data[prefix + "LOG_STREAM_REPLICAS"] == "3"

    for name, workload in {**deployments, **statefulsets}.items():
        pod = workload["spec"]["template"]["spec"]
        container = pod["containers"][0]
        if name in ("redis", "nats"):
            continue
        kind = container["command"][-1].rsplit(".", 1)[-1]
        # Probes: the plaintext health-only port; readiness apart from liveness (docs/hardening.md).
        assert container["readinessProbe"]["grpc"] == {"port": HEALTH_PORT, "service": "readiness"}, name
        for probe in ("startupProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": HEALTH_PORT, "service": "liveness"}, name
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["internal-token"] == "/etc/winnow/internal", name
        assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert workload["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9100"
        gpus = container["resources"].get("limits", {}).get("nvidia.com/gpu")
        assert gpus == (1 if overlay == "gpu" and kind in ("embedder", "reranker") else None), name

    pdb_targets = {d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
                   for d in _by_kind(docs, "PodDisruptionBudget").values()}
    assert {"embedder", "reranker", "gateway", "index"} <= pdb_targets
    hpas = _by_kind(docs, "HorizontalPodAutoscaler")
    assert hpas["gateway"]["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    for name in ("embedder", "reranker"):
        assert hpas[name]["spec"]["metrics"][0]["pods"]["metric"]["name"] == "winnow_queue_time_seconds_per_request"
    secrets = {d["metadata"]["name"].rsplit("-", 1)[0]: d for d in docs if d["kind"] == "Secret"}
    assert {"WINNOW_GATEWAY_REDIS_URL", "WINNOW_GATEWAY_AUTH_TOKEN"} <= set(secrets["winnow-secrets"]["data"])
    assert set(secrets["winnow-internal-token"]["data"]) == {"token"}
    for svc in ("EMBEDDER", "RERANKER", "INDEX"):
        assert config["data"][f"WINNOW_{svc}_AUTH_TOKEN_FILE"] == "/etc/winnow/internal/token"
    assert config["data"]["WINNOW_GATEWAY_INTERNAL_TOKEN_FILE"] == "/etc/winnow/internal/token"
    policies = _by_kind(docs, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"]["podSelector"] == {}
    internal = policies["internal-from-gateway"]["spec"]
    assert internal["podSelector"]["matchExpressions"][0]["values"] == ["embedder", "reranker", "index"]
    assert internal["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"


# --- Grafana --------------------------------------------------------------------------------------------------


def test_dashboard_json_is_valid_and_generated():
    path = ROOT / "deploy/grafana/dashboards/winnow.json"
    dashboard = json.loads(path.read_text())
    builder = runpy.run_path(str(ROOT / "deploy/grafana/build_dashboard.py"))
    assert path.read_text() == builder["render"](), "stale: run python deploy/grafana/build_dashboard.py > " + str(path)
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        pos = p["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24
        if p["type"] != "row":
            assert p["targets"] and all(t["expr"] and t["datasource"]["uid"] == "${datasource}" for t in p["targets"])
    titles = " | ".join(p["title"].lower() for p in panels)
    for topic in ("request rate", "errors by status", "stage latency", "batch size", "queue time", "shard coverage",
                  "cache", "documents per shard", "generation"):
        assert topic in titles, f"no panel for {topic}"
    provisioning = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert provisioning["datasources"][0]["uid"] == dashboard["templating"]["list"][0]["current"]["value"]
