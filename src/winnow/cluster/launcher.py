"""The local cluster: nats-server (the document log), embedder, reranker, N shards x R replicas and the gateway
as processes on loopback.

This is the embedded default behind `winnow up` and the end-to-end tests. Every service binds port 0 (or the
gateway's fixed port) and writes a ready file once its health is SERVING (a replica: once caught up with its log
partition); the launcher waits on those files, never on sleeps. The JetStream store, the replicas' snapshots and
the logs live under `data_dir`, so a restart keeps the corpus. `registry.json` lists every replica's address per
shard and is rewritten (tmp + rename, version bumped) whenever one starts on a new port, so gateways follow it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from winnow.cluster.nats import NatsNode
from winnow.cluster.nats import single as nats_single

log = logging.getLogger(__name__)

STATE_FILE = "cluster.json"
REGISTRY_FILE = "registry.json"
LAYOUT_FILE = "layout.json"


class ClusterError(RuntimeError):
    """A service did not start; the message carries the tail of its log."""


@dataclass
class ClusterConfig:
    data_dir: Path = Path(".winnow")
    shards: int = 2
    replicas: int = 1
    host: str = "127.0.0.1"
    # The document log: "" = start a nats-server under data_dir (port nats_port, 0 = a free one, kept across
    # restarts of that server); else these nats:// URLs (comma-separated) and no server of our own.
    log_url: str = ""
    nats_port: int = 0
    nats_sync_always: bool = False
    gateway_port: int = 50050
    redis_url: str = "redis://127.0.0.1:6379/0"
    cache: str = "auto"
    reranker: bool = True
    # Only the log and the shard replicas (no embedder, reranker or gateway): fault tests and benches that write
    # precomputed vectors straight to the log.
    replicas_only: bool = False
    # The embedder without a model (hashed bag of words, dimension 32: `winnow.bench.replica_cluster`), for tests
    # and benches about the cluster rather than the model; index replicas then need --dim 32.
    fake_embedder: bool = False
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
    shard: int = -1      # index replicas: the shard (= log partition) they serve
    layout: str = ""     # index replicas: the layout the partition belongs to
    env: dict[str, str] = field(default_factory=dict)  # secrets and per-service settings: env, never argv
    pid: int | None = None  # a process another launcher started (an attached cluster): no Popen handle here

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return self.pid is not None and _alive(self.pid)


class LocalCluster:
    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir).resolve()
        self.procs: dict[str, Proc] = {}
        self.nats: NatsNode | None = None
        self.registry_version = 0
        self.layout, self.shards = self._layout()

    def _layout(self) -> tuple[str, int]:
        """The shard layout in force: kept in data_dir, since the log's streams are named by it."""
        path = self.data_dir / LAYOUT_FILE
        if path.exists():
            saved = json.loads(path.read_text())
            if saved["shards"] != self.config.shards:
                log.warning("data_dir holds a %d-shard layout; using it (change it with `winnow reshard`)",
                            saved["shards"])
            return saved["layout"], int(saved["shards"])
        return "L0", self.config.shards

    def _save_layout(self) -> None:
        _atomic_write(self.data_dir / LAYOUT_FILE, {"layout": self.layout, "shards": self.shards})

    @property
    def log_url(self) -> str:
        return self.config.log_url or (self.nats.url if self.nats else "")

    def replica_names(self, shard: int) -> list[str]:
        return [n for n, p in self.procs.items() if p.kind == "index" and p.shard == shard]

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> "LocalCluster":
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "run").mkdir(parents=True, exist_ok=True)
        try:
            if not self.config.log_url:
                self.start_nats()
            self._save_layout()
            first = [] if self.config.replicas_only else [self._spawn("embedder", "embedder", [])]
            if self.config.reranker and not self.config.replicas_only:
                first.append(self._spawn("reranker", "reranker", ["--token-store-dir", str(self.data_dir / "reranker")]))
            for i in range(self.shards):
                for r in range(self.config.replicas):
                    first.append(self.spawn_replica(i, r, self.layout))
            self._wait(first)
            self.write_registry()
            if self.config.replicas_only:
                return self
            gw_args = [
                "--embedder", self.procs["embedder"].address,
                "--reranker", self.procs["reranker"].address if self.config.reranker else "",
                "--shard-registry", str(self.data_dir / REGISTRY_FILE),
                "--cache", self.config.cache,
                "--log-url", self.log_url,
                "--layout", self.layout,
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

    def start_nats(self) -> NatsNode:
        """Start (or restart, on the same port and store) the cluster's own nats-server."""
        if self.nats is None:
            self.nats = nats_single(self.data_dir, port=self.config.nats_port, sync_always=self.config.nats_sync_always)
            self.nats.log_path = self.data_dir / "logs" / "nats.log"
        self.nats.start().wait()
        self.procs["nats"] = Proc("nats", "nats", [], self.nats.popen, address=f"{self.config.host}:{self.nats.port}",
                                  log_path=self.nats.log_path)
        return self.nats

    def spawn_replica(self, shard: int, replica: int, layout: str) -> Proc:
        """Start replica `replica` of `shard` (not waited on); its data dir survives restarts."""
        name = f"shard-{shard}-r{replica}" if layout == self.layout else f"{layout}-shard-{shard}-r{replica}"
        data = self.data_dir / "shards" / layout / f"shard-{shard}" / f"r{replica}"
        args = ["--shard-id", f"shard-{shard}", "--replica-id", name, "--data-dir", str(data),
                "--partition", str(shard), "--layout", layout, "--log-url", self.log_url]
        proc = self._spawn(name, "index", args)
        proc.shard, proc.layout = shard, layout
        return proc

    def shards_arg(self, layout: str | None = None) -> str:
        """The gateway's static `--shards`: `|` between replicas of a shard, `,` between shards."""
        layout = layout or self.layout
        per = {}
        for p in self.procs.values():
            if p.kind == "index" and p.layout == layout and p.address:
                per.setdefault(p.shard, []).append(p.address)
        return ",".join("|".join(per.get(i, [])) for i in range(max(per) + 1 if per else 0))

    def write_registry(self) -> None:
        """`registry.json` (the contract with the gateway): every replica's address per shard of the layout."""
        self.registry_version += 1
        shards: dict[str, list[str]] = {}
        for p in sorted(self.procs.values(), key=lambda p: p.name):
            if p.kind == "index" and p.layout == self.layout and p.address and p.alive():
                shards.setdefault(str(p.shard), []).append(p.address)
        _atomic_write(self.data_dir / REGISTRY_FILE,
                      {"version": self.registry_version, "layout": self.layout, "shards": shards})

    def restart(self, name: str, wipe: bool = False) -> Proc:
        """Start a stopped (or killed) service again with the same arguments (a new port for port-0 services;
        the same port and store for nats-server); `wipe` deletes a replica's data dir first."""
        old = self.procs[name]
        if old.popen is not None and old.popen.poll() is None:
            raise ClusterError(f"{name} is still running; stop or kill it first")
        if old.kind == "nats":
            self.start_nats()
            return self.procs["nats"]
        if wipe and old.kind == "index":
            data = Path(old.args[old.args.index("--data-dir") + 1])
            shutil.rmtree(data, ignore_errors=True)
        port = int(old.args[old.args.index("--port") + 1])
        proc = self._spawn(name, old.kind, old.args[old.args.index("--ready-file") + 2:], port=port, raw=True,
                           env=old.env)
        proc.shard, proc.layout = old.shard, old.layout
        self._wait([proc])
        self.write_registry()
        self._write_state()
        return proc

    def _spawn(self, name: str, kind: str, args: list[str], port: int = 0, raw: bool = False,
               env: dict[str, str] | None = None) -> Proc:
        run = self.data_dir / "run"
        ready = run / f"{name}.ready.json"
        ready.unlink(missing_ok=True)
        log_path = self.data_dir / "logs" / f"{name}.log"
        module = ["winnow.bench.replica_cluster", "fake-embedder"] if kind == "embedder" and self.config.fake_embedder \
            else [f"winnow.services.{kind}"]
        cmd = [
            sys.executable, "-m", *module,
            "--host", self.config.host, "--port", str(port), "--metrics-port", "0", "--ready-file", str(ready),
            *args, *([] if raw else self.config.service_args.get(kind, [])),
        ]
        # Offline model loading is forced by the services themselves (importing winnow.models does it).
        own_env = dict(env or {})
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1", **self.config.env, **own_env}
        logf = open(log_path, "ab")  # noqa: SIM115 - the child owns it
        # Own session: Ctrl-C in the terminal reaches the launcher only (it stops the services in order), and a
        # detached cluster outlives the command that started it.
        popen = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                 start_new_session=True)
        logf.close()
        proc = Proc(name, kind, cmd, popen, log_path=log_path, ready_path=ready, env=own_env)
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
        # Gateway first, so it stops taking traffic before its dependencies go; the log last.
        targets.sort(key=lambda p: (p.kind == "nats", p.kind != "gateway"))
        for p in targets:
            if p.alive():
                if p.popen is not None:
                    p.popen.send_signal(signal.SIGTERM)
                else:
                    os.kill(p.pid, signal.SIGTERM)  # type: ignore[arg-type]
        end = time.monotonic() + grace
        for p in targets:
            if p.popen is None:
                while p.alive() and time.monotonic() < end:
                    time.sleep(0.05)
                if p.alive():
                    os.kill(p.pid, signal.SIGKILL)  # type: ignore[arg-type]
                continue
            try:
                p.popen.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(timeout=5)
        if names is None:
            (self.data_dir / STATE_FILE).unlink(missing_ok=True)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Stop one service abruptly (failure tests); a replica leaves the registry."""
        p = self.procs[name]
        if p.popen is not None and p.popen.poll() is None:
            p.popen.send_signal(sig)
            p.popen.wait(timeout=30)
        if p.kind == "index":
            self.write_registry()

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
            "gateway": self.procs["gateway"].address if "gateway" in self.procs else "",
            "log_url": self.log_url,
            "replicas": self.config.replicas,
            "service_args": self.config.service_args,  # new replicas (a reshard) start like the first ones
            "fake_embedder": self.config.fake_embedder,
            "services": {
                n: {"kind": p.kind, "pid": p.popen.pid if p.popen else p.pid, "address": p.address,
                    "metrics_port": p.metrics_port, "log": str(p.log_path), "shard": p.shard, "layout": p.layout}
                for n, p in self.procs.items()
            },
        }
        _atomic_write(self.data_dir / STATE_FILE, state)

    @classmethod
    def attach(cls, data_dir: Path) -> "LocalCluster":
        """The cluster a `winnow up --detach` left running, from its state file (to reshard it, for example)."""
        state = read_state(data_dir)
        if state is None:
            raise ClusterError(f"no cluster is running from {data_dir} (winnow up --detach first)")
        saved = Path(data_dir) / LAYOUT_FILE
        shards = int(json.loads(saved.read_text())["shards"]) if saved.exists() else 2
        c = cls(ClusterConfig(data_dir=Path(data_dir), shards=shards, replicas=int(state.get("replicas", 1)),
                              log_url=state.get("log_url", ""), service_args=state.get("service_args", {}),
                              fake_embedder=bool(state.get("fake_embedder", False))))
        for name, s in state["services"].items():
            c.procs[name] = Proc(name, s["kind"], [], None, address=s["address"], metrics_port=s["metrics_port"],
                                 log_path=Path(s["log"]), shard=int(s.get("shard", -1)), layout=s.get("layout", ""),
                                 pid=s["pid"])
        c.registry_version = int(json.loads((c.data_dir / REGISTRY_FILE).read_text()).get("version", 0)) \
            if (c.data_dir / REGISTRY_FILE).exists() else 0
        return c


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
    order = sorted(pids, key=lambda n: (state["services"][n]["kind"] == "nats", state["services"][n]["kind"] != "gateway"))
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


def _atomic_write(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])
