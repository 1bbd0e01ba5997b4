"""A small replicated cluster as real processes for the replica tests and `winnow bench replicas`.

A nats-server (the document log, JetStream on free ports), N shards x R index replicas (`python -m
winnow.services.index`, each on port 0 with its own data dir, following its log partition), a gateway
(`python -m winnow.services.gateway`) that follows a registry file (the format of the local launcher's), and a
hash bag-of-words embedder (the embedder service with its model-free FakeEncoder: plumbing only, no quality) so
the measurements are about the read path, not the model. Every start waits on the service's ready file.

`python -m winnow.bench.replica_cluster fake-embedder --ready-file F` runs that embedder on its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DIM = 32


@dataclass
class Service:
    name: str
    cmd: list[str]
    ready: Path
    log: Path
    popen: subprocess.Popen | None = None
    address: str = ""

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class ReplicaCluster:
    workdir: Path
    shards: int = 2
    replicas: int = 2
    gateway_args: list[str] = field(default_factory=list)
    index_args: list[str] = field(default_factory=list)
    start_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.registry = self.workdir / "registry.json"
        self.version = 0
        self.layout = "L1"
        self.index: dict[tuple[int, int], Service] = {}
        self.embedder: Service | None = None
        self.gateway: Service | None = None
        self.nats = None
        self.extra: list[Service] = []  # processes of other layouts and extra gateways

    @property
    def log_url(self) -> str:
        return self.nats.url if self.nats is not None else ""

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> "ReplicaCluster":
        from winnow.cluster.nats import single

        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.nats = single(self.workdir).start().wait()
        self.embedder = self._spawn("embedder", [sys.executable, "-m", "winnow.bench.replica_cluster",
                                                 "fake-embedder"])
        for s in range(self.shards):
            for r in range(self.replicas):
                self.index[(s, r)] = self._spawn_index(s, r)
        self._wait([self.embedder, *self.index.values()])
        self.write_registry()
        self.gateway = self._spawn("gateway", [
            sys.executable, "-m", "winnow.services.gateway", "--embedder", self.embedder.address, "--reranker", "",
            "--shard-registry", str(self.registry), "--cache", "off", "--drain-grace-s", "0.5",
            "--log-url", self.log_url,
            # Failover is measured here, not shedding: no admission gate, so a refused search never reads as a
            # failover failure (the gate has its own figures: docs/hardening.md).
            "--max-concurrent", "0",
            *self.gateway_args])
        self._wait([self.gateway])
        return self

    def stop(self) -> None:
        procs = [p for p in (self.gateway, *self.extra, *self.index.values(), self.embedder)
                 if p is not None and p.alive()]
        for p in procs:
            p.popen.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        for p in procs:
            try:
                p.popen.wait(timeout=10)  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                p.popen.kill()  # type: ignore[union-attr]
                p.popen.wait(timeout=5)  # type: ignore[union-attr]
        if self.nats is not None:
            self.nats.stop(grace=5)

    def __enter__(self) -> "ReplicaCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- faults -----------------------------------------------------------------------------------------------

    def kill(self, shard: int, replica: int, sig: int = signal.SIGKILL, wait: bool = True) -> None:
        p = self.index[(shard, replica)]
        if p.alive():
            p.popen.send_signal(sig)  # type: ignore[union-attr]
            if wait:
                p.popen.wait(timeout=30)  # type: ignore[union-attr]

    def restart(self, shard: int, replica: int, publish: bool = True) -> str:
        """Start the replica again on its data dir and a new free port; publish it in the registry."""
        old = self.index[(shard, replica)]
        if old.alive():
            self.kill(shard, replica, signal.SIGTERM)
        p = self.index[(shard, replica)] = self._spawn_index(shard, replica)
        self._wait([p])
        if publish:
            self.write_registry()
        return p.address

    def write_registry(self, layout: str | None = None, shards: list[list[str]] | None = None,
                       path: Path | None = None) -> None:
        """Atomically (tmp + rename) publish every live replica's address (or `shards`), bumping the version."""
        if shards is None:
            self.layout = layout or self.layout
            shards = [[self.index[(s, r)].address for r in range(self.replicas) if self.index[(s, r)].alive()]
                      for s in range(self.shards)]
        self.version += 1
        doc = {"version": self.version, "layout": layout or self.layout,
               "shards": {str(i): addrs for i, addrs in enumerate(shards)}}
        path = path or self.registry
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)

    def spawn_layout(self, name: str, shards: int) -> list[Service]:
        """Index processes for another layout (one replica per shard, own data dirs), started and SERVING."""
        procs = [self._spawn_index(s, 0, tag=name) for s in range(shards)]
        self._wait(procs)
        self.extra.extend(procs)
        return procs

    def spawn_gateway(self, name: str, registry: Path, *args: str) -> Service:
        """Another gateway on `registry` (e.g. to write into a new layout before searches switch to it)."""
        assert self.embedder is not None
        g = self._spawn(name, [sys.executable, "-m", "winnow.services.gateway", "--embedder", self.embedder.address,
                               "--reranker", "", "--shard-registry", str(registry), "--cache", "off",
                               "--log-url", self.log_url, *args])
        self._wait([g])
        self.extra.append(g)
        return g

    # -- internals --------------------------------------------------------------------------------------------

    def _spawn_index(self, shard: int, replica: int, tag: str = "") -> Service:
        data = self.workdir / f"data{tag}" / f"shard-{shard}" / f"replica-{replica}"
        return self._spawn(f"shard{tag}-{shard}-r{replica}", [
            sys.executable, "-m", "winnow.services.index", "--shard-id", f"shard-{shard}", "--data-dir", str(data),
            "--dim", str(DIM), "--no-fsync", "--index-factory", "Flat", "--drain-grace-s", "0.5",
            "--health-interval-s", "0.5", "--log-url", self.log_url, "--layout", tag or self.layout,
            "--partition", str(shard), "--replica-id", f"shard-{shard}-r{replica}", *self.index_args])

    def _spawn(self, name: str, cmd: list[str]) -> Service:
        ready = self.workdir / "logs" / f"{name}.ready.json"
        ready.unlink(missing_ok=True)
        log = self.workdir / "logs" / f"{name}.log"
        full = [*cmd, "--host", "127.0.0.1", "--port", "0", "--ready-file", str(ready)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "WINNOW_INDEX_COARSE_DIMS": "8,16"}
        with open(log, "ab") as fh:
            popen = subprocess.Popen(full, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                     start_new_session=True)
        return Service(name, full, ready, log, popen)

    def _wait(self, services: list[Service]) -> None:
        end = time.monotonic() + self.start_timeout_s
        pending = list(services)
        while pending:
            for s in list(pending):
                if s.ready.exists():
                    try:
                        s.address = f"127.0.0.1:{json.loads(s.ready.read_text())['port']}"
                    except (ValueError, KeyError):
                        continue  # being written
                    pending.remove(s)
                elif not s.alive():
                    raise RuntimeError(f"{s.name} exited during start-up:\n{_tail(s.log)}")
            if pending and time.monotonic() > end:
                raise RuntimeError(f"{[s.name for s in pending]} not SERVING in time:\n"
                                   + "\n".join(_tail(s.log) for s in pending))
            if pending:
                time.sleep(0.02)  # polling the file each service writes once SERVING


def _tail(path: Path, n: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else "(no log)"


def _fake_embedder(argv: list[str]) -> int:
    """The embedder service with the model-free FakeEncoder (hashed bag of words)."""
    from winnow.models.encoder import FakeEncoder
    from winnow.rpc.server import serve
    from winnow.services.embedder.__main__ import build
    from winnow.services.embedder.settings import EmbedderSettings

    encoder = FakeEncoder(dimension=DIM, max_seq_length=64, mrl_dimensions=(8, 16))
    return serve("embedder", EmbedderSettings, lambda s: build(s, encoder=encoder), argv)


if __name__ == "__main__":
    if sys.argv[1:2] == ["fake-embedder"]:
        sys.exit(_fake_embedder(sys.argv[2:]))
    sys.exit("usage: python -m winnow.bench.replica_cluster fake-embedder [embedder flags]")
