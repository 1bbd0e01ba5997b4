"""What a service team sees, on the real local cluster (real models, shard, reranker, gateway processes): the
README's client and CLI examples run as written, failures are one clean line with their own exit code, --json
always parses, and the gateway's /metrics has its stage histograms and build info after one search.

The gateway here requires a token (`auth_token`), so every example also proves that WINNOW_TOKEN is enough.
The README's addresses (127.0.0.1:50050) are replaced by the test cluster's; `eval`/`bench`/`serve` lines are in a
separate block of longer runs that tests/e2e/test_eval_run.py and the bench docs cover.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from winnow.cluster.launcher import ClusterConfig, LocalCluster
from winnow.services.gateway.server import API_VERSION

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
TOKEN = "e2e-secret-token"


def _blocks(lang: str, after: str) -> list[str]:
    """The ```lang code blocks of the README section that starts with heading `after`."""
    section = README[README.index(after):]
    section = section[: section.index("\n## ", 1)] if "\n## " in section[1:] else section
    return re.findall(rf"```{lang}\n(.*?)```", section, re.S)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cfg = ClusterConfig(data_dir=tmp_path_factory.mktemp("interfaces"), shards=1, gateway_port=0, cache="memory",
                        service_args={"gateway": ["--auth-token", TOKEN, "--max-write-docs", "100"]})
    with LocalCluster(cfg) as c:
        yield c


def _env(cluster, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINNOW_")}
    env.update(WINNOW_TARGET=cluster.gateway, WINNOW_TOKEN=TOKEN, PYTHONPATH=os.pathsep.join(sys.path))
    env.update(extra)
    return env


def _winnow(args: list[str], env: dict[str, str], cwd: Path = REPO, timeout: float = 180):
    return subprocess.run([sys.executable, "-m", "winnow.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def test_readme_python_examples_run_as_written(cluster):
    blocks = _blocks("python", "### Python client")
    assert len(blocks) >= 2
    printed = []
    for code in blocks:
        code = code.replace("127.0.0.1:50050", cluster.gateway)
        out = subprocess.run([sys.executable, "-c", code], env=_env(cluster), capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, f"README example failed:\n{code}\n--- stderr:\n{out.stderr[-3000:]}"
        printed.append(out.stdout)
    # What the examples print is what they promise: the split upsert, the decoded error details, the cursor.
    first = printed[0].splitlines()
    assert first[0].startswith("True 1 ") and "a1" in first[1] and first[-1] == "3"  # 250 docs, 100 a request
    assert "K_TOO_LARGE [('k'," in printed[1] and API_VERSION in printed[1]


def test_readme_cli_examples_run_as_written(cluster):
    block = _blocks("bash", "### CLI")[0]
    lines = [ln.split("  #")[0].strip() for ln in block.splitlines() if ln.strip().startswith("winnow ")]
    assert len(lines) >= 6
    for line in lines:
        args = shlex.split(line)[1:]
        out = _winnow(args, _env(cluster))
        assert out.returncode == 0, f"`{line}` exited {out.returncode}: {out.stderr[-2000:]}"
        assert "Traceback" not in out.stderr
        if "--json" in args:
            json.loads(out.stdout)
    status = _winnow(["status"], _env(cluster)).stdout
    assert f"gateway {cluster.gateway} (found by WINNOW_TARGET)" in status


def _one_clean_line(out) -> str:
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    return lines[0]


@pytest.mark.parametrize("args, env_extra, code, kind", [
    (["search", "x", "--target", "127.0.0.1:1", "--timeout", "3"], {}, 4, "unavailable"),
    (["search", "x", "-k", "5000"], {}, 3, "invalid_argument"),
    (["search", "x"], {"WINNOW_TOKEN": "wrong"}, 6, "unauthenticated"),
    (["search", "x", "--timeout", "0.001", "--no-cache"], {}, 5, "deadline_exceeded"),
    (["search", "--no-such-flag", "x"], {}, 2, "usage"),
    (["status"], {"WINNOW_TARGET": ""}, 4, "unavailable"),  # no cluster: never a silent default address
])
def test_failures_are_one_line_with_their_own_exit_code_and_json(cluster, tmp_path, args, env_extra, code, kind):
    env = _env(cluster, **env_extra)
    if env_extra.get("WINNOW_TARGET") == "":
        del env["WINNOW_TARGET"]
    plain = _winnow(args, env, cwd=tmp_path)
    assert plain.returncode == code, plain.stderr
    line = _one_clean_line(plain)
    assert line.startswith("winnow") and kind.replace("_", " ") in line
    assert plain.stdout == ""
    as_json = _winnow([*args, "--json"], env, cwd=tmp_path)
    assert as_json.returncode == code
    err = json.loads(as_json.stdout)["error"]
    assert err["kind"] == kind and err["exit_code"] == code and err["message"]
    if code == 3:
        assert err["reason"] == "K_TOO_LARGE" and err["field_violations"][0]["field"] == "k"
    if code == 6:
        assert err["reason"] == "BAD_TOKEN"


def test_debug_shows_the_traceback(cluster, tmp_path):
    out = _winnow(["search", "x", "--target", "127.0.0.1:1", "--timeout", "2", "--debug"], _env(cluster), tmp_path)
    assert out.returncode == 4 and "Traceback" in out.stderr


def test_version_and_service_help(cluster):
    version = _winnow(["--version"], _env(cluster))
    from winnow.services.gateway.server import API_VERSION

    assert version.returncode == 0 and re.match(rf"winnow \S+ \(git \S+, gateway API {re.escape(API_VERSION)}\)",
                                                 version.stdout)
    helped = _winnow(["serve", "gateway", "--help"], _env(cluster))
    assert helped.returncode == 0 and "--max-write-docs" in helped.stdout and "winnow serve gateway" in helped.stdout


def test_gateway_metrics_have_stage_histograms_and_build_info_after_one_search(cluster):
    from winnow.client import WinnowClient

    with WinnowClient(cluster.gateway, token=TOKEN, timeout=120) as w:
        w.upsert([{"id": "m1", "text": "metrics after one search"}])
        w.search("metrics after one search", no_cache=True)
    pages = {name: urllib.request.urlopen(url, timeout=10).read().decode()
             for name, url in cluster.metrics_urls().items()}
    gateway = pages["gateway"]
    for stage in ("embed", "search", "merge", "fusion", "rerank", "total"):
        m = re.search(rf'^winnow_stage_duration_seconds_count\{{service="gateway",shard="",stage="{stage}"\}} (\S+)',
                      gateway, re.M)
        assert m and float(m.group(1)) >= 1, stage
    for name, text in pages.items():
        assert re.search(r'^winnow_build_info\{.*git_sha="[^"]+".*\} 1\.0$', text, re.M), name
