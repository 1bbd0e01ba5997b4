"""The TLS overlay (cert-manager certificates, mounts, settings) renders, validates, and wires every hop."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run(["kubectl", "kustomize", "deploy/k8s/overlays/cpu-tls"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_tls_overlay_validates_and_mounts_a_certificate_in_every_service(docs):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for doc in docs:
        if not doc["apiVersion"].startswith("cert-manager.io/"):  # CRDs: not in the Kubernetes schemas
            kubernetes_validate.validate(doc, "1.30.0", strict=True)
    certs = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Certificate"}
    assert certs["winnow-ca"]["isCA"] is True
    assert "client auth" in certs["winnow-gateway-tls"]["usages"]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("winnow-config"))
    config = config["data"]
    assert config["WINNOW_GATEWAY_INTERNAL_TLS_SERVER_NAME"] in certs["winnow-internal-tls"]["dnsNames"]
    for svc in ("EMBEDDER", "RERANKER", "INDEX"):  # internal services: TLS and client certificates required
        assert config[f"WINNOW_{svc}_TLS_CLIENT_CA_FILE"] == "/etc/winnow/tls/ca.crt"
    assert config["WINNOW_GATEWAY_INTERNAL_TLS_CERT_FILE"] == "/etc/winnow/tls/tls.crt"
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")
                 and d["metadata"]["name"] not in ("redis", "nats")]
    assert {w["metadata"]["name"] for w in workloads} >= {"embedder", "reranker", "gateway", "winnow-index-0"}
    for w in workloads:
        pod = w["spec"]["template"]["spec"]
        secret = {v["name"]: v.get("secret", {}).get("secretName") for v in pod["volumes"]}["tls"]
        want = "winnow-gateway-tls" if w["metadata"]["name"] == "gateway" else "winnow-internal-tls"
        assert secret == want and secret in {c["secretName"] for c in certs.values()}
        assert {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}["tls"] == "/etc/winnow/tls"
