"""The local cluster: embedder, reranker, N index shards and the gateway as processes on loopback.

This is the embedded default behind `winnow up` and the end-to-end tests. Every service binds port 0 (or the
gateway's fixed port) and writes a ready file once its health is SERVING; the launcher waits on those files,
never on sleeps. Data (shard WAL/snapshots) and logs live under `data_dir`, so a restart keeps the corpus.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

STATE_FILE = "cluster.json"


class ClusterError(RuntimeError):
    """A service did not start; the message carries the tail of its log."""


@dataclass
class ClusterConfig:
    data_dir: Path = Path(".winnow")
    shards: int = 2
    host: str = "127.0.0.1"
    gateway_port: int = 50050
    redis_url: str = "redis://127.0.0.1:6379/0"
    cache: str = "auto"
    reranker: bool = True
    start_timeout_s: float = 300.0
    # Extra CLI flags per service kind ("embedder", "reranker", "index", "gateway").
    service_args: dict[str, list[str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Proc:
    name: str
    kind: str
    args: list[str]
    popen: subprocess.Popen | None = None
    address: str = ""
    metrics_port: int = -1
    log_path: Path | None = None
    ready_path: Path | None = None


class LocalCluster:
    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir).resolve()
        self.procs: dict[str, Proc] = {}

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> "LocalCluster":
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "run").mkdir(parents=True, exist_ok=True)
        first = [self._spawn("embedder", "embedder", [])]
        if self.config.reranker:
            first.append(self._spawn("reranker", "reranker", ["--token-store-dir", str(self.data_dir / "reranker")]))
        for i in range(self.config.shards):
            shard_dir = self.data_dir / "shards" / f"shard-{i}"
            first.append(self._spawn(f"shard-{i}", "index", ["--shard-id", f"shard-{i}", "--data-dir", str(shard_dir)]))
        try:
            self._wait(first)
            gw_args = [
                "--embedder", self.procs["embedder"].address,
                "--reranker", self.procs["reranker"].address if self.config.reranker else "",
                "--shards", ",".join(self.procs[f"shard-{i}"].address for i in range(self.config.shards)),
                "--cache", self.config.cache,
            ]
            # A secret (the Redis URL may hold a password) goes by env, never argv: argv shows in `ps`.
            gw = self._spawn("gateway", "gateway", gw_args, port=self.config.gateway_port,
                             env={"WINNOW_GATEWAY_REDIS_URL": self.config.redis_url})
            self._wait([gw])
        except BaseException:
            self.stop(grace=2.0)
            raise
        self._write_state()
        return self

    def _spawn(self, name: str, kind: str, args: list[str], port: int = 0, env: dict[str, str] | None = None) -> Proc:
        run = self.data_dir / "run"
        ready = run / f"{name}.ready.json"
        ready.unlink(missing_ok=True)
        log_path = self.data_dir / "logs" / f"{name}.log"
        cmd = [
            sys.executable, "-m", f"winnow.services.{kind}",
            "--host", self.config.host, "--port", str(port), "--metrics-port", "0", "--ready-file", str(ready),
            *args, *self.config.service_args.get(kind, []),
        ]
        # Offline model loading is forced by the services themselves (importing winnow.models does it).
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1", **self.config.env,
               **(env or {})}
        logf = open(log_path, "ab")  # noqa: SIM115 - the child owns it
        # Own session: Ctrl-C in the terminal reaches the launcher only (it stops the services in order), and a
        # detached cluster outlives the command that started it.
        popen = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                 start_new_session=True)
        logf.close()
        proc = Proc(name, kind, cmd, popen, log_path=log_path, ready_path=ready)
        self.procs[name] = proc
        return proc

    def _wait(self, procs: list[Proc]) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        pending = list(procs)
        while pending:
            for p in list(pending):
                assert p.popen is not None and p.ready_path is not None
                if p.ready_path.exists():
                    try:
                        info = json.loads(p.ready_path.read_text())
                    except json.JSONDecodeError:
                        continue  # being written
                    p.address = f"{self.config.host}:{info['port']}"
                    p.metrics_port = int(info.get("metrics_port", -1))
                    pending.remove(p)
                elif p.popen.poll() is not None:
                    raise ClusterError(f"{p.name} exited with code {p.popen.returncode} during start-up:\n"
                                       f"{tail(p.log_path)}")
            if pending and time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {[p.name for p in pending]} to become SERVING:\n"
                                   + "\n".join(tail(p.log_path) for p in pending))
            if pending:
                time.sleep(0.05)  # polling a file the child writes once SERVING; not a readiness guess

    def stop(self, grace: float = 10.0, names: list[str] | None = None) -> None:
        """SIGTERM (services drain), then SIGKILL whatever is still running after `grace` seconds."""
        targets = [p for n, p in self.procs.items() if names is None or n in names]
        # Gateway first, so it stops taking traffic before its dependencies go.
        targets.sort(key=lambda p: p.kind != "gateway")
        for p in targets:
            if p.popen is not None and p.popen.poll() is None:
                p.popen.send_signal(signal.SIGTERM)
        end = time.monotonic() + grace
        for p in targets:
            if p.popen is None:
                continue
            try:
                p.popen.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(timeout=5)
        if names is None:
            (self.data_dir / STATE_FILE).unlink(missing_ok=True)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Stop one service abruptly (failure tests)."""
        p = self.procs[name]
        if p.popen is not None and p.popen.poll() is None:
            p.popen.send_signal(sig)
            p.popen.wait(timeout=30)

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------------------------------------

    @property
    def gateway(self) -> str:
        return self.procs["gateway"].address

    def metrics_urls(self) -> dict[str, str]:
        return {n: f"http://{self.config.host}:{p.metrics_port}/metrics" for n, p in self.procs.items()
                if p.metrics_port > 0}

    def _write_state(self) -> None:
        state = {
            "gateway": self.gateway,
            "services": {
                n: {"kind": p.kind, "pid": p.popen.pid if p.popen else None, "address": p.address,
                    "metrics_port": p.metrics_port, "log": str(p.log_path)}
                for n, p in self.procs.items()
            },
        }
        (self.data_dir / STATE_FILE).write_text(json.dumps(state, indent=2))


def read_state(data_dir: Path) -> dict | None:
    path = Path(data_dir) / STATE_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def stop_detached(data_dir: Path, grace: float = 10.0) -> list[str]:
    """Stop a cluster started with --detach (from its state file). Returns the names signalled."""
    state = read_state(data_dir)
    if state is None:
        return []
    stopped = []
    pids = {n: s["pid"] for n, s in state["services"].items() if s.get("pid")}
    order = sorted(pids, key=lambda n: state["services"][n]["kind"] != "gateway")
    for n in order:
        try:
            os.kill(pids[n], signal.SIGTERM)
            stopped.append(n)
        except ProcessLookupError:
            pass
    end = time.monotonic() + grace
    for n in order:
        while _alive(pids[n]) and time.monotonic() < end:
            time.sleep(0.05)
        if _alive(pids[n]):
            os.kill(pids[n], signal.SIGKILL)
    (Path(data_dir) / STATE_FILE).unlink(missing_ok=True)
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # reap if it is our child
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])
