"""`winnow bench peers`: Winnow against Milvus Lite and an in-process FAISS + bm25s script, same workload, same run.

Workload: SciFact (5,183 abstracts, 300 test queries), the same precomputed MiniLM vectors for every system
(cached in --cache-dir after the first run). Each system is a driver process speaking one protocol (driverlib),
timing inside its own client process; measurements are interleaved (rounds, system order rotated each round) and
reported as medians, so load from other users of the machine hits every system alike. Ratios are Winnow / peer,
from this run only.

Rows: nDCG@10 (each system's default fusion: Winnow convex, the peers RRF; Winnow RRF shown too); hybrid p50/p90
engine only (query vector given) and end to end (query text, embedded by the system); QPS with 8 client threads
(vector given, and text); RSS of everything needed to serve text queries (Winnow: gateway + embedder + shards,
reranker off; Milvus Lite: its server plus the client process holding the encoder; in-process: the one process).
A peer whose environment is missing (Milvus Lite: --peers-venv) is skipped with a line saying how to add it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from winnow.bench.peers import drivers, workload
from winnow.bench.peers.report import print_report
from winnow.eval.metrics import ndcg_at_k

ROOT = Path(__file__).resolve().parents[4]
# ../shared beside the checkout (main), or two levels up from a worktree under wt/
DEFAULT_DATASET = next((p / "shared" / "datasets" / "scifact" for p in ROOT.parents
                        if (p / "shared" / "datasets" / "scifact").is_dir()), ROOT.parent / "shared" / "datasets" / "scifact")


def _ndcg(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> float:
    return round(float(np.mean([ndcg_at_k(run[q], qrels[q], 10) for q in qrels])), 4)


def _start_winnow(wl: workload.Workload, tmp: Path, shards: int, log: Path) -> tuple[object, str]:
    from winnow.api.gateway.v1 import gateway_pb2 as pb
    from winnow.api.gateway.v1 import gateway_pb2_grpc
    from winnow.cluster.launcher import ClusterConfig, LocalCluster
    import grpc

    cluster = LocalCluster(ClusterConfig(data_dir=tmp / "winnow", shards=shards, gateway_port=0, cache="off",
                                         reranker=False)).start()
    with grpc.insecure_channel(cluster.gateway) as ch:
        stub = gateway_pb2_grpc.GatewayStub(ch)
        for i in range(0, len(wl.doc_ids), 256):
            docs = [pb.Document(id=d, text=t, vector=v.tolist()) for d, t, v in
                    zip(wl.doc_ids[i:i + 256], wl.doc_texts[i:i + 256], wl.doc_vectors[i:i + 256])]
            stub.Upsert(pb.UpsertRequest(documents=docs), timeout=300)
    return cluster, cluster.gateway


def _cold_start(cluster, wl: workload.Workload, log, clients: int, seconds: float) -> tuple[object, dict]:
    """Restart the Winnow cluster from its data (as after `winnow down` / `winnow up`), then QPS with query text
    over the first `seconds` after it reports ready, and again over the next `seconds` (warm)."""
    from winnow.cluster.launcher import LocalCluster

    config = cluster.config
    cluster.stop()
    t = time.perf_counter()
    cluster = LocalCluster(config).start()
    up_s = time.perf_counter() - t
    d = drivers.winnow(wl.root, cluster.gateway, log("winnow-cold")).start()
    try:
        first = d.call(cmd="qps", mode="hybrid", text=True, clients=clients, seconds=seconds)
        warm = d.call(cmd="qps", mode="hybrid", text=True, clients=clients, seconds=seconds)
    finally:
        d.stop()
    return cluster, {"restart_s": round(up_s, 1), "first_qps": round(first["qps"], 1), "warm_qps": round(warm["qps"], 1),
                     "first_failed": first.get("failed", 0), "warm_failed": warm.get("failed", 0),
                     "ratio": round(first["qps"] / warm["qps"], 3) if warm["qps"] else float("nan")}


def _winnow_rss(cluster) -> dict[str, float]:
    from winnow.bench.peers.driverlib import rss_mb

    return {name: rss_mb(p.popen.pid) for name, p in cluster.procs.items() if p.popen is not None}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="winnow bench peers", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=DEFAULT_DATASET, help="BEIR SciFact directory")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "winnow-bench-cache",
                    help="where the MiniLM vectors are cached between runs")
    ap.add_argument("--peers-venv", type=Path, default=ROOT / ".peers-venv",
                    help="virtual environment with milvus-lite + pymilvus (python3 -m venv .peers-venv && "
                         ".peers-venv/bin/pip install milvus-lite==2.5.1 'pymilvus>=2.5,<2.6' 'setuptools<81')")
    ap.add_argument("--systems", default="winnow,milvus-lite,in-process")
    ap.add_argument("--shards", type=int, default=2, help="Winnow index shards")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per measurement")
    ap.add_argument("--latency-queries", type=int, default=100, help="sequential queries per system per round")
    ap.add_argument("--qps-seconds", type=float, default=5.0, help="seconds per QPS measurement per round")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--queries", type=int, default=0, help="test queries to use (0 = all 300)")
    ap.add_argument("--no-text", action="store_true", help="skip the end-to-end (query text) rows")
    ap.add_argument("--cold-seconds", type=float, default=10.0,
                    help="Winnow cold start: QPS over this long right after a restart vs the next as long (0 = skip)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round, 30 queries, 2 s QPS")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.latency_queries, args.qps_seconds = 1, 30, 2.0
    wanted = args.systems.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="winnow-peers-"))
    log = lambda name: tmp / f"{name}.log"  # noqa: E731
    notes: list[str] = []
    print("workload: SciFact vectors (cached after the first run) ...", file=sys.stderr)
    wl = workload.build(args.dataset, args.cache_dir, tmp / "workload", queries=args.queries, progress=not args.json)
    started: dict[str, drivers.Driver] = {}
    cluster = None
    try:
        for name in wanted:
            print(f"starting {name} ...", file=sys.stderr)
            if name == "in-process":
                started[name] = drivers.inprocess(wl.root, log(name)).start()
            elif name == "milvus-lite":
                python = args.peers_venv / "bin" / "python"
                if not python.exists():
                    notes.append(f"milvus-lite skipped: no venv at {args.peers_venv} (see --peers-venv)")
                    continue
                started[name] = drivers.milvus(python, wl.root, tmp / "milvus.db", log(name)).start()
            elif name == "winnow":
                cluster, target = _start_winnow(wl, tmp, args.shards, log(name))
                started[name] = drivers.winnow(wl.root, target, log(name)).start()
                started["winnow-rrf"] = drivers.winnow(wl.root, target, log("winnow-rrf"), fusion="rrf").start()
            else:
                raise SystemExit(f"unknown system {name!r}")
        systems = [s for s in started if s != "winnow-rrf"]
        result: dict = {"systems": {}, "notes": notes, "machine": "shared; medians of interleaved rounds"}
        for name, d in started.items():
            r = result["systems"].setdefault(name, {})
            r["version"] = d.ready.get("version", "")
            r["ndcg@10"] = _ndcg(d.call(cmd="quality", mode="hybrid", text=False)["run"], wl.qrels)
            if name != "winnow-rrf":
                r["ndcg@10_dense"] = _ndcg(d.call(cmd="quality", mode="dense", text=False)["run"], wl.qrels)
                r["ndcg@10_lexical"] = _ndcg(d.call(cmd="quality", mode="lexical", text=False)["run"], wl.qrels)
        kinds = [("engine", False)] + ([] if args.no_text else [("e2e", True)])
        lat: dict = {(s, k): [] for s in systems for k, _ in kinds}
        qps: dict = {(s, k): [] for s in systems for k, _ in kinds}
        failed: dict = {(s, k): 0 for s in systems for k, _ in kinds}
        for s in systems:  # one warm-up pass each, unmeasured
            for _, text in kinds:
                started[s].call(cmd="latency", mode="hybrid", text=text, n=20)
        for rnd in range(args.rounds):
            order = systems[rnd % len(systems):] + systems[:rnd % len(systems)]
            print(f"round {rnd + 1}/{args.rounds}: {', '.join(order)}", file=sys.stderr)
            for s in order:
                for kind, text in kinds:
                    lat[(s, kind)] += started[s].call(cmd="latency", mode="hybrid", text=text,
                                                      n=args.latency_queries)["ms"]
            for s in order:
                for kind, text in kinds:
                    ans = started[s].call(cmd="qps", mode="hybrid", text=text, clients=args.clients,
                                          seconds=args.qps_seconds)
                    qps[(s, kind)].append(ans["qps"])
                    failed[(s, kind)] += ans.get("failed", 0)
                    if ans.get("errors"):
                        notes.append(f"{s} {kind} QPS: {ans['failed']} failed, e.g. {ans['errors'][0][:160]}")
        for s in systems:
            r = result["systems"][s]
            for kind, _ in kinds:
                ms = np.asarray(lat[(s, kind)])
                r[f"{kind}_p50_ms"] = round(float(np.percentile(ms, 50)), 2)
                r[f"{kind}_p90_ms"] = round(float(np.percentile(ms, 90)), 2)
                r[f"{kind}_qps"] = round(statistics.median(qps[(s, kind)]), 1)
                r[f"{kind}_qps_failed"] = failed[(s, kind)]
            if s == "winnow":
                per = _winnow_rss(cluster)
                r["rss_by_service_mb"] = per
                r["rss_mb"] = round(sum(per.values()), 1)
            else:
                r["rss_mb"] = started[s].call(cmd="rss")["rss_mb"]
        if cluster is not None and args.cold_seconds > 0:
            for n in ("winnow", "winnow-rrf"):
                started.pop(n).stop()
            print("winnow cold start: restart, then first vs next QPS ...", file=sys.stderr)
            cluster, result["cold_start"] = _cold_start(cluster, wl, log, args.clients, args.cold_seconds)
        result["config"] = {"rounds": args.rounds, "latency_queries": args.latency_queries, "clients": args.clients,
                            "qps_seconds": args.qps_seconds, "queries": len(wl.query_ids), "docs": len(wl.doc_ids),
                            "shards": args.shards, "k": wl.k, "window": wl.window}
    finally:
        for d in started.values():
            d.stop()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0
