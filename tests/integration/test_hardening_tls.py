"""TLS and auth on every hop, on real processes: a shard and the gateway with mTLS and tokens, certificates from
a throwaway CA made here with the openssl CLI. No models are needed: with the embedder absent, a hybrid search
is answered from BM25 (flagged), which still crosses the gateway -> shard hop."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from winnow.api.gateway.v1 import gateway_pb2 as gpb
from winnow.api.internal.index.v1 import index_pb2, index_pb2_grpc
from winnow.client import WinnowClient
from winnow.rpc.healthcheck import check

INTERNAL_TOKEN = "internal-" + "7" * 32
PUBLIC_TOKEN = "public-" + "5" * 32


def make_pki(d: Path) -> Path:
    """ca.pem, server.{pem,key} (SAN localhost, 127.0.0.1) and client.{pem,key}, all signed by the CA."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=winnow-test-ca")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "1", "-extfile", "san.ext")
    return d


def start(kind: str, workdir: Path, args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, dict]:
    ready = workdir / f"{kind}.ready.json"
    log = open(workdir / f"{kind}.log", "ab")  # noqa: SIM115 - the child owns it
    popen = subprocess.Popen([sys.executable, "-m", f"winnow.services.{kind}", "--port", "0", "--ready-file",
                              str(ready), *args], stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})
    log.close()
    end = time.monotonic() + 120
    while not ready.exists():
        assert popen.poll() is None and time.monotonic() < end, (workdir / f"{kind}.log").read_text()[-3000:]
        time.sleep(0.05)  # polling the file the service writes once SERVING
    return popen, json.loads(ready.read_text())


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed")
    d = make_pki(tmp_path_factory.mktemp("pki"))
    work = tmp_path_factory.mktemp("tls-cluster")
    (work / "internal.token").write_text(INTERNAL_TOKEN + "\n")
    server_tls = {"TLS_CERT_FILE": str(d / "server.pem"), "TLS_KEY_FILE": str(d / "server.key"),
                  "TLS_CLIENT_CA_FILE": str(d / "ca.pem")}
    shard_env = {f"WINNOW_INDEX_{k}": v for k, v in server_tls.items()}
    shard_env |= {"WINNOW_INDEX_AUTH_TOKEN_FILE": str(work / "internal.token"), "WINNOW_INDEX_DIM": "8",
                  "WINNOW_INDEX_DATA_DIR": str(work / "shard"), "WINNOW_INDEX_HEALTH_PORT": "0"}
    shard, shard_info = start("index", work, [], shard_env)
    gw_env = {f"WINNOW_GATEWAY_{k}": v for k, v in server_tls.items()}
    gw_env |= {
        "WINNOW_GATEWAY_AUTH_TOKEN": PUBLIC_TOKEN, "WINNOW_GATEWAY_INTERNAL_TOKEN_FILE": str(work / "internal.token"),
        "WINNOW_GATEWAY_INTERNAL_TLS_CA_FILE": str(d / "ca.pem"),
        "WINNOW_GATEWAY_INTERNAL_TLS_CERT_FILE": str(d / "client.pem"),
        "WINNOW_GATEWAY_INTERNAL_TLS_KEY_FILE": str(d / "client.key"),
        "WINNOW_GATEWAY_SHARDS": f"localhost:{shard_info['port']}", "WINNOW_GATEWAY_EMBEDDER": "127.0.0.1:9",
        "WINNOW_GATEWAY_RERANKER": "", "WINNOW_GATEWAY_CACHE": "off", "WINNOW_GATEWAY_EMBEDDER_WAIT_S": "0",
    }
    gateway, gw_info = start("gateway", work, [], gw_env)
    yield {"pki": d, "shard": shard_info, "gateway": gw_info, "procs": (shard, gateway)}
    for p in (gateway, shard):
        p.terminate()
        p.wait(timeout=30)


def _client(s, **kw) -> WinnowClient:
    d = s["pki"]
    opts = {"tls_ca": str(d / "ca.pem"), "tls_cert": str(d / "client.pem"), "tls_key": str(d / "client.key"),
            "token": PUBLIC_TOKEN} | kw
    return WinnowClient(f"localhost:{s['gateway']['port']}", timeout=20, **opts)


def test_search_over_mtls_with_tokens_on_both_hops_falls_back_to_bm25_flagged(secured):
    with _client(secured) as c:
        r = c.search("aspirin and fever", k=5)
    assert (r.coverage.shards_asked, r.coverage.shards_answered) == (1, 1)  # the gateway -> shard hop worked
    assert "embedder" in r.dense_skipped_reason and "BM25" in r.dense_skipped_reason


@pytest.mark.parametrize(("change", "code"), [
    ({"tls_ca": ""}, grpc.StatusCode.UNAVAILABLE),                            # plaintext to a TLS port
    ({"tls_cert": "", "tls_key": ""}, grpc.StatusCode.UNAVAILABLE),           # TLS without a client certificate
    ({"token": ""}, grpc.StatusCode.UNAUTHENTICATED),                         # mTLS but no token
])
def test_the_public_port_refuses_callers_missing_a_credential(secured, change, code):
    with _client(secured, **change) as c, pytest.raises(grpc.RpcError) as err:
        c.search("aspirin", k=5, timeout=5)
    assert err.value.code() == code


def test_an_internal_service_refuses_anyone_without_the_gateways_credential(secured):
    d, port = secured["pki"], secured["shard"]["port"]
    creds = grpc.ssl_channel_credentials((d / "ca.pem").read_bytes(), (d / "client.key").read_bytes(),
                                         (d / "client.pem").read_bytes())
    with grpc.secure_channel(f"localhost:{port}", creds) as ch:
        stub = index_pb2_grpc.IndexShardStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            stub.Get(index_pb2.GetRequest(ids=["a"]), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = stub.Stats(index_pb2.StatsRequest(), timeout=5,
                        metadata=(("authorization", f"Bearer {INTERNAL_TOKEN}"),))
        assert ok.dimension == 8
    # The plaintext health-only port answers probes (Kubernetes gRPC probes cannot speak TLS) and nothing else.
    assert check(f"127.0.0.1:{secured['shard']['health_port']}", "liveness")[0] == 0
    assert check(f"127.0.0.1:{secured['shard']['health_port']}")[0] == 0


def test_no_secret_is_in_any_process_arguments(secured):
    for p in secured["procs"]:
        argv = Path(f"/proc/{p.pid}/cmdline").read_bytes().decode()
        assert INTERNAL_TOKEN not in argv and PUBLIC_TOKEN not in argv


def test_a_placeholder_token_refuses_to_start(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "winnow.services.index", "--port", "0"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "WINNOW_INDEX_AUTH_TOKEN": "change-me",
                                                      "WINNOW_INDEX_DATA_DIR": str(tmp_path)})
    assert proc.returncode != 0 and "placeholder" in proc.stderr + proc.stdout
