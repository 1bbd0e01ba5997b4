"""`winnow up | down | status | reshard`: the local cluster's life, and which cluster a command found."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

from winnow.cli.common import DEFAULT_DATA_DIR, connect, emit
from winnow.cli.failures import CliError, Exit

REPO_ROOT = Path(__file__).resolve().parents[3]
SAMPLE = REPO_ROOT / "data" / "scifact-sample.jsonl.gz"


def cmd_up(args) -> int:
    from winnow.client import WinnowClient
    from winnow.cluster.launcher import ClusterConfig, LocalCluster, read_state
    from winnow.ingest import count_lines, ingest, read_documents

    if read_state(Path(args.data_dir)):
        raise CliError(f"a cluster is already running from {args.data_dir} (winnow status / winnow down)")
    cfg = ClusterConfig(data_dir=Path(args.data_dir), shards=args.shards, replicas=args.replicas,
                        gateway_port=args.port, redis_url=args.redis_url, cache=args.cache, log_url=args.log_url)
    print(f"starting nats-server, {args.shards} shard(s) x {args.replicas} replica(s), embedder, reranker and "
          f"gateway (logs: {args.data_dir}/logs) ...", file=sys.stderr)
    cluster = LocalCluster(cfg).start()
    try:
        with WinnowClient(cluster.gateway, timeout=120) as client:
            info = client.info()
            print(f"gateway {cluster.gateway}: {info.documents} documents, cache={info.cache}, "
                  f"embedder={info.embedder_model} ({info.embedder_device}), "
                  f"reranker={info.reranker_scorer or 'none'}", file=sys.stderr)
            if info.cache == "memory":
                print("Redis not reachable: using the in-process result cache", file=sys.stderr)
            sample = Path(args.sample) if args.sample else SAMPLE
            if info.documents == 0 and not args.no_sample and sample.exists():
                print(f"first start: ingesting {sample.name} (persisted in {args.data_dir}; later starts skip "
                      "this)", file=sys.stderr)
                ingest(client, read_documents(sample), total=count_lines(sample), desc="sample")
    except BaseException:
        cluster.stop()
        raise
    print(f"\nready: winnow search \"your query\"   (gateway {cluster.gateway})", file=sys.stderr)
    if args.json:
        emit(args, {"gateway": cluster.gateway, "data_dir": str(args.data_dir), "detached": args.detach})
    if args.detach:
        print("detached; stop with: winnow down", file=sys.stderr)
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("Ctrl-C stops the cluster", file=sys.stderr)
    stop.wait()
    print("stopping ...", file=sys.stderr)
    cluster.stop()
    return 0


def cmd_down(args) -> int:
    from winnow.cluster.launcher import stop_detached

    stopped = stop_detached(Path(args.data_dir))
    print(f"stopped: {', '.join(stopped)}" if stopped else f"no cluster running from {args.data_dir}",
          file=sys.stderr)
    if args.json:
        emit(args, {"stopped": stopped})
    return 0


def cmd_status(args) -> int:
    from winnow.cluster.launcher import read_state

    client, found = connect(args, timeout=args.timeout)
    with client:
        if not client.healthy(timeout=min(5.0, args.timeout)):
            raise CliError(f"gateway {found.target} (from {found.source}) is not serving: not reachable, or its "
                           "health check says NOT_SERVING", Exit.UNAVAILABLE, target=found.target,
                           source=found.source)
        info = client.info()
    out: dict[str, Any] = {"gateway": found.target, "found_by": found.source, **info.to_json()}
    state = read_state(Path(args.data_dir)) if found.source.startswith("local") else None
    if state:
        out["pids"] = {n: s["pid"] for n, s in state["services"].items()}
    if args.json:
        emit(args, out)
        return 0
    healthy = sum(s.healthy for s in info.shards)
    print(f"cluster: gateway {found.target} (found by {found.source}), winnow {info.version}, API {info.api_version}")
    print(f"  {info.documents} documents · cache {info.cache} · embedder {out['embedder']} · reranker "
          f"{out['reranker']}")
    print(f"  shards: {healthy}/{len(info.shards)} healthy")
    for s in info.shards:
        state_txt = f"{s.count} docs, generation {s.generation}, {s.index_factory}" if s.healthy else f"DOWN: {s.error}"
        print(f"    {s.address}: {state_txt}")
    return 0


def cmd_reshard(args) -> int:
    from winnow.cluster.launcher import ClusterError, LocalCluster
    from winnow.cluster.reshard import reshard

    try:
        cluster = LocalCluster.attach(Path(args.data_dir))
    except ClusterError as exc:
        raise CliError(str(exc), Exit.UNAVAILABLE) from None
    print(f"resharding {cluster.layout} ({cluster.shards} shards) into {args.shards} shards; searches and "
          "writes go on ...", file=sys.stderr)
    layout = reshard(cluster, args.shards)
    print(f"now serving layout {layout} with {args.shards} shards", file=sys.stderr)
    if args.json:
        emit(args, {"layout": layout, "shards": args.shards})
    return 0


# -- parsers: `add(name, help, connection=...)` is `winnow.cli.app.build_parser`'s, which keeps the help's order --

def add_up(add) -> None:
    up = add("up", "start the local cluster (embedder, reranker, shards, gateway) on loopback", connection=False)
    up.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="data, logs and state of the local cluster")
    up.add_argument("--shards", type=int, default=2, help="index shards")
    up.add_argument("--replicas", type=int, default=1, help="replicas per shard, each following the shard's log")
    up.add_argument("--log-url", default="", help="use this NATS JetStream (nats://...) instead of starting one")
    up.add_argument("--port", type=int, default=50050, help="gateway port (0 = any free port)")
    up.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="result cache (used when reachable)")
    up.add_argument("--cache", default="auto", choices=["auto", "redis", "memory", "off"],
                    help="auto: Redis if reachable, else in-process")
    up.add_argument("--detach", action="store_true", help="start in the background and return")
    up.add_argument("--sample", default=None,
                    help="corpus ingested on first start (default: data/scifact-sample.jsonl.gz of this checkout)")
    up.add_argument("--no-sample", action="store_true", help="start empty")
    up.set_defaults(func=cmd_up)


def add_down(add) -> None:
    down = add("down", "stop a local cluster started from --data-dir", connection=False)
    down.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="data, logs and state of the local cluster")
    down.set_defaults(func=cmd_down)


def add_status(add) -> None:
    add("status", "which cluster was found, its health, documents, models and shards").set_defaults(func=cmd_status)


def add_reshard(add) -> None:
    rs = add("reshard", "re-partition a running local cluster to --shards M (no re-embedding)", connection=False)
    rs.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="data, logs and state of the local cluster")
    rs.add_argument("--shards", type=int, required=True, help="the new number of shards")
    rs.set_defaults(func=cmd_reshard)
