"""`winnow bench gateway`: end-to-end latency and QPS of the gateway, its own overhead, and cache-hit latency.

Starts a private local cluster (or uses --target), ingests a sample, then for each pipeline and concurrency
level sends uncached searches from a thread pool (one shared channel) and reports client-side p50/p99 and QPS.
Gateway overhead = client-measured end-to-end minus the sum of the stage times the gateway reports
(cache, embed, search, merge, rerank): what the gateway and the client<->gateway hop add.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

STAGES = ("cache", "embed", "search", "merge", "fusion", "rerank")


def _pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs), p)) if xs else float("nan")


def _run_level(client, queries: list[str], concurrency: int, n: int, rerank: bool) -> dict:
    lat, overhead, stage_sum = [], [], []

    def one(i: int) -> None:
        t = time.perf_counter()
        r = client.search(queries[i % len(queries)], k=10, rerank=rerank, no_cache=True)
        ms = (time.perf_counter() - t) * 1000
        stages = sum(r.timings_ms.get(s, 0.0) for s in STAGES)
        lat.append(ms)
        stage_sum.append(stages)
        overhead.append(ms - stages)

    one(0)  # warm this pipeline
    lat.clear(), overhead.clear(), stage_sum.clear()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    return {"concurrency": concurrency, "requests": n, "qps": n / wall, "p50_ms": _pct(lat, 50),
            "p99_ms": _pct(lat, 99), "overhead_p50_ms": _pct(overhead, 50), "overhead_p99_ms": _pct(overhead, 99),
            "stages_p50_ms": _pct(stage_sum, 50)}


def _cache_hits(client, query: str, n: int) -> dict:
    client.search(query, k=10)
    time.sleep(0.2)  # let the background cache write land
    lat, hits = [], 0
    for _ in range(n):
        t = time.perf_counter()
        r = client.search(query, k=10)
        lat.append((time.perf_counter() - t) * 1000)
        hits += r.cache_hit
    return {"requests": n, "hit_rate": hits / n, "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99),
}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="winnow bench gateway", description=__doc__,
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--target", help="a running gateway (default: start a private local cluster)")
    ap.add_argument("--docs", type=int, default=300, help="sample documents to ingest into the private cluster")
    ap.add_argument("--concurrency", default="1,8,32", help="comma-separated concurrency levels")
    ap.add_argument("--requests", type=int, default=0, help="requests per level (default 8 x concurrency, >= 24)")
    ap.add_argument("--cache-requests", type=int, default=300, help="sequential cache-hit requests")
    ap.add_argument("--quick", action="store_true", help="small run (smoke test)")
    ap.add_argument("--json", action="store_true", help="print only one JSON object on stdout")
    args = ap.parse_args(argv)
    if args.quick:
        args.docs, args.concurrency, args.cache_requests = 40, "1,4", 50

    from winnow.client import WinnowClient
    from winnow.cli import SAMPLE
    from winnow.ingest import ingest, read_documents

    queries_path = SAMPLE.parent / "scifact-sample-queries.jsonl.gz"
    import gzip

    with gzip.open(queries_path, "rt") as fh:
        queries = [json.loads(line)["text"] for line in fh]

    cluster, tmp = None, None
    target = args.target
    if not target:
        from winnow.cluster.launcher import ClusterConfig, LocalCluster

        tmp = tempfile.mkdtemp(prefix="winnow-bench-")
        print("starting a private cluster ...", file=sys.stderr)
        cluster = LocalCluster(ClusterConfig(data_dir=Path(tmp), gateway_port=0, cache="auto")).start()
        target = cluster.gateway
    try:
        with WinnowClient(target, timeout=300) as client:
            if cluster is not None:
                docs = [d for _, d in zip(range(args.docs), read_documents(SAMPLE))]
                ingest(client, docs, total=len(docs), desc="ingest", progress=not args.json)
            info = client.info()
            levels = [int(c) for c in args.concurrency.split(",")]
            results = {"hybrid+rerank": [], "hybrid": []}
            for name, rerank in (("hybrid+rerank", True), ("hybrid", False)):
                for c in levels:
                    n = args.requests or max(24, 8 * c)
                    if args.quick:
                        n = 8
                    print(f"{name}: concurrency {c}, {n} requests ...", file=sys.stderr)
                    results[name].append(_run_level(client, queries, c, n, rerank))
            cache = _cache_hits(client, queries[0], args.cache_requests)
    finally:
        if cluster is not None:
            cluster.stop()
            shutil.rmtree(tmp, ignore_errors=True)

    c1 = results["hybrid+rerank"][0]
    report = {
        "overhead_p50_ms": c1["overhead_p50_ms"],
        "cache_hit_p50_ms": cache["p50_ms"],
        "cache": cache,
        "cache_backend": info.cache,
        "documents": info.documents,
        "shards": len(info.shards),
        "reranker": info.reranker_scorer,
        "pipelines": results,
        "goals": {"overhead_p50_ms<=2": c1["overhead_p50_ms"] <= 2.0, "cache_hit_p50_ms<=1": cache["p50_ms"] <= 1.0},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"\nwinnow bench gateway: {info.documents} docs, {len(info.shards)} shards, cache={info.cache}, "
          f"reranker={info.reranker_scorer}")
    print(f"{'pipeline':<15}{'conc':>5}{'req':>6}{'QPS':>8}{'p50 ms':>9}{'p99 ms':>9}{'overhead p50':>14}"
          f"{'overhead p99':>14}")
    for name, rows in results.items():
        for r in rows:
            print(f"{name:<15}{r['concurrency']:>5}{r['requests']:>6}{r['qps']:>8.1f}{r['p50_ms']:>9.1f}"
                  f"{r['p99_ms']:>9.1f}{r['overhead_p50_ms']:>14.2f}{r['overhead_p99_ms']:>14.2f}")
    print(f"cache hit: p50 {cache['p50_ms']:.3f} ms, p99 {cache['p99_ms']:.3f} ms, hit rate {cache['hit_rate']:.2f}")
    print(f"overhead_p50_ms {report['overhead_p50_ms']:.2f} (goal <= 2), cache_hit_p50_ms "
          f"{report['cache_hit_p50_ms']:.3f} (goal <= 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
