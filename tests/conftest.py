"""Shared fixtures: a real redis-server on a free port, and the small SciFact sample."""

from __future__ import annotations

import gzip
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "scifact-sample.jsonl.gz"
QUERIES = REPO / "data" / "scifact-sample-queries.jsonl.gz"
QRELS = REPO / "data" / "scifact-sample-qrels.tsv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A private redis-server process (so tests can stop it without touching anyone else's)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        for _ in range(200):
            try:
                if client.ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.02)  # polling for the port to open
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


def sample_docs(n: int, must_include: list[str] = ()) -> list[dict]:
    """The first n sample abstracts plus the ones named (BEIR records)."""
    out, wanted = [], set(must_include)
    with gzip.open(SAMPLE, "rt") as fh:
        for line in fh:
            rec = json.loads(line)
            if len(out) < n or rec["_id"] in wanted:
                out.append(rec)
                wanted.discard(rec["_id"])
    return out


def sample_queries() -> dict[str, str]:
    with gzip.open(QUERIES, "rt") as fh:
        return {q["_id"]: q["text"] for q in map(json.loads, fh)}


def sample_qrels() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for line in QRELS.read_text().splitlines()[1:]:
        q, d, _ = line.split("\t")
        out.setdefault(q, set()).add(d)
    return out


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory):
    """A private nats-server with JetStream on free ports (never the machine's own on 4222). Tests sharing it
    use their own layout ids, so their streams never meet."""
    from winnow.cluster.nats import single

    node = single(tmp_path_factory.mktemp("nats")).start().wait()
    yield node
    node.stop()


def unique_layout() -> str:
    import uuid

    return "T" + uuid.uuid4().hex[:12]
