"""`make protos-check` (tools/gen_protos.py --check) fails on a contract edited without regenerating, passes otherwise.

The check runs on copies in a temporary directory, so the repository's own protos and stubs are never touched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "gen_protos.py"


def check(protos: Path, stubs: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), "--check", "--protos", str(protos), str(stubs)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def copies(tmp_path):
    """A copy of protos/ and of the committed stubs (src/winnow/api)."""
    protos, stubs = tmp_path / "protos", tmp_path / "src"
    shutil.copytree(ROOT / "protos", protos)
    shutil.copytree(ROOT / "src" / "winnow" / "api", stubs / "winnow" / "api",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return protos, stubs


def test_the_committed_stubs_are_fresh():
    result = check(ROOT / "protos", ROOT / "src")
    assert result.returncode == 0, result.stderr


def test_an_edited_proto_without_regenerating_fails(copies):
    protos, stubs = copies
    proto = protos / "winnow/api/internal/reranker/v1/reranker.proto"
    proto.write_text(proto.read_text() + "\nmessage AddedWithoutRegenerating { string note = 1; }\n")
    result = check(protos, stubs)
    assert result.returncode == 1
    assert "differs: winnow/api/internal/reranker/v1/reranker_pb2.py" in result.stderr
    assert "make protos" in result.stderr


def test_a_deleted_stub_fails_and_regenerating_fixes_it(copies):
    protos, stubs = copies
    (stubs / "winnow/api/internal/index/v1/index_pb2_grpc.py").unlink()
    result = check(protos, stubs)
    assert result.returncode == 1 and "missing: winnow/api/internal/index/v1/index_pb2_grpc.py" in result.stderr
    subprocess.run([sys.executable, str(TOOL), "--protos", str(protos), str(stubs)], check=True, timeout=120)
    assert check(protos, stubs).returncode == 0
