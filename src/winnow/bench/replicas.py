"""`winnow bench replicas`: what reading across replicas costs and what it saves, on real processes.

A private cluster of 2 shards x 2 index replicas (`winnow.bench.replica_cluster`: real index services and
gateways, a model-free hash embedder so the model does not drown the read path) and two gateways on the same
registry, one hedging and one not. Measured in one run:

1. search latency with 1 vs 2 replicas per shard (the registry is switched between them, rounds interleaved);
2. hedging off vs on, both gateways interleaved, healthy replicas;
3. a hung replica (SIGSTOP) under 4 searching threads: how long searches wait, hedging off (a backup at half
   the budget, then the replica is ejected) vs on;
4. failover gap after kill -9 of a replica under load: from the kill until every search that was in flight has
   been answered by the other replica; p50 and max over the kills (the replica is restarted on a new port between
   kills and found through the registry).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

QUERIES = [f"topic{i} words about things" for i in range(7)]


def _pct(xs, p) -> float:
    return float(np.percentile(np.asarray(xs), p)) if len(xs) else float("nan")


def _latencies(client, n: int, timeout: float = 5.0) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        r = client.search(QUERIES[i % len(QUERIES)], k=10, rerank=False, no_cache=True, timeout=timeout)
        out.append((time.perf_counter() - t) * 1000)
        assert r.coverage.shards_answered == r.coverage.shards_asked, r.coverage
    return out


class _Load:
    """Threads searching in a loop; every call's (start, end, ok, full coverage) on the monotonic clock."""

    def __init__(self, client, workers: int, timeout: float) -> None:
        self.client, self.timeout = client, timeout
        self.calls: list[tuple[float, float, bool, bool]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(workers)]

    def _run(self, i: int) -> None:
        n = i
        while not self.stop.is_set():
            n += 1
            t = time.monotonic()
            try:
                r = self.client.search(QUERIES[n % len(QUERIES)], k=10, rerank=False, no_cache=True,
                                       timeout=self.timeout)
                full = r.coverage.shards_answered == r.coverage.shards_asked
                self.calls.append((t, time.monotonic(), True, full))
            except Exception:  # noqa: BLE001 - counted as a failure
                self.calls.append((t, time.monotonic(), False, False))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def _layer_overhead_us(n: int = 5000) -> dict:
    """The replica layer alone, in process: one shard call through a ReplicaSet of 2 vs straight to its port."""
    import asyncio

    from winnow.services.gateway.ports import Hit, ShardQuery, ShardResult
    from winnow.services.gateway.replicas import ReplicaSet

    class Instant:
        def __init__(self, target: str) -> None:
            self.target = target

        async def search(self, query, timeout):
            return ShardResult([Hit("d", 1.0)], [], 1)

        async def serving(self):
            yield True
            await asyncio.Event().wait()

        async def watch(self):
            yield 1
            await asyncio.Event().wait()

        async def close(self):
            pass

    async def run() -> dict:
        a = Instant("a")
        rs = ReplicaSet("bench", [a, Instant("b")])
        rs.start()
        await asyncio.sleep(0.01)
        q = ShardQuery(None, 10)
        out = {}
        for name, fn in (("direct", lambda: a.search(q, 1.0)), ("replica_set", lambda: rs.search(q, 1.0))):
            for _ in range(200):
                await fn()
            t = time.perf_counter()
            for _ in range(n):
                await fn()
            out[name] = (time.perf_counter() - t) / n * 1e6
        await rs.stop()
        return out

    return asyncio.run(run())


def _gap_after(calls, t_fault: float) -> float:
    """ms from the fault until every search in flight at it (or started after it, up to then) was answered."""
    inflight = [end for start, end, *_ in calls if start <= t_fault < end]
    first_after = min((end for start, end, ok, full in calls if start > t_fault and ok), default=t_fault)
    return (max([*inflight, first_after]) - t_fault) * 1000


def _wait_seen(client, address: str, within_s: float = 30.0) -> None:
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        if any(r.address == address and r.healthy for s in client.info().shards for r in s.replicas):
            return
        time.sleep(0.05)
    raise RuntimeError(f"gateway never saw {address}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="winnow bench replicas", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=200, help="sequential searches per latency round")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds per configuration")
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--hedge-ms", type=float, default=25.0, help="the hedging gateway's hedge_after_ms")
    ap.add_argument("--hung-s", type=float, default=3.0, help="seconds of load against a hung replica")
    ap.add_argument("--eject-max-s", type=float, default=5.0, help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=2.0, help="each search's deadline, seconds")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.docs, args.requests, args.rounds, args.kills, args.hung_s = 200, 40, 2, 2, 1.0

    from winnow.bench.replica_cluster import ReplicaCluster, Service
    from winnow.client import WinnowClient

    report: dict = {"layer_us": _layer_overhead_us()}
    with ReplicaCluster(Path(tempfile.mkdtemp(prefix="winnow-bench-replicas-")), shards=2, replicas=2) as c:
        hedged: Service = c._spawn("gateway-hedged", [
            sys.executable, "-m", "winnow.services.gateway", "--embedder", c.embedder.address, "--reranker", "",
            "--shard-registry", str(c.registry), "--cache", "off", "--hedge-after-ms", str(args.hedge_ms),
            "--log-url", c.log_url])
        c._wait([hedged])
        plain, hedge = WinnowClient(c.gateway.address, timeout=30), WinnowClient(hedged.address, timeout=30)
        try:
            docs = [{"id": f"d{i}", "text": f"document {i} about topic{i % 7} and words {i % 13}"}
                    for i in range(args.docs)]
            for i in range(0, len(docs), 500):
                plain.upsert(docs[i:i + 500])
            _latencies(plain, 20), _latencies(hedge, 20)  # warm both gateways

            # 1. one vs two replicas per shard (same processes; the registry decides), interleaved rounds.
            one, two = [], []
            for _ in range(args.rounds):
                c.replicas = 1
                c.write_registry()
                time.sleep(0.5)  # the gateway polls the registry every 0.2 s
                one += _latencies(plain, args.requests)
                c.replicas = 2
                c.write_registry()
                for r in range(2):
                    _wait_seen(plain, c.index[(0, r)].address)
                two += _latencies(plain, args.requests)
            report["replicas"] = {"1": {"p50_ms": _pct(one, 50), "p99_ms": _pct(one, 99), "n": len(one)},
                                  "2": {"p50_ms": _pct(two, 50), "p99_ms": _pct(two, 99), "n": len(two)}}

            # 2. hedging off vs on, healthy replicas.
            off, on = [], []
            for _ in range(args.rounds):
                off += _latencies(plain, args.requests)
                on += _latencies(hedge, args.requests)
            report["hedging_healthy"] = {"off": {"p50_ms": _pct(off, 50), "p99_ms": _pct(off, 99)},
                                         "on": {"p50_ms": _pct(on, 50), "p99_ms": _pct(on, 99)}}

            # 3. a hung replica (SIGSTOP: connection open, no answers), 4 searching threads per gateway.
            hung = {}
            for name, client in (("off", plain), ("on", hedge)):
                c.kill(0, 0, signal.SIGSTOP, wait=False)
                try:
                    with _Load(client, workers=4, timeout=args.timeout) as load:
                        time.sleep(args.hung_s)
                finally:
                    c.kill(0, 0, signal.SIGCONT, wait=False)
                lat = [(end - start) * 1000 for start, end, ok, _ in load.calls if ok]
                hung[name] = {"p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99), "max_ms": max(lat),
                              "searches": len(load.calls), "failed": sum(not ok for *_, ok, _ in load.calls)}
                time.sleep(args.eject_max_s)  # let the replica's ejection expire before the next gateway's turn
            report["hung_replica"] = hung

            # 4. failover gap on kill -9 under load (4 searching threads, hedging off).
            gaps, failed, partial, answered = [], 0, 0, 0
            for k in range(args.kills):
                victim = (k % 2, k // 2 % 2)
                with _Load(plain, workers=4, timeout=args.timeout) as load:
                    time.sleep(0.5)
                    t_kill = time.monotonic()
                    c.kill(*victim, signal.SIGKILL)
                    time.sleep(1.0)
                gaps.append(_gap_after(load.calls, t_kill))
                failed += sum(not ok for *_, ok, _ in load.calls)
                partial += sum(ok and not full for *_, ok, full in load.calls)
                answered += len(load.calls)
                _wait_seen(plain, c.restart(*victim))
            report["failover"] = {"kills": args.kills, "gap_p50_ms": _pct(gaps, 50), "gap_max_ms": max(gaps),
                                  "searches": answered, "failed": failed, "partial_coverage": partial}
        finally:
            plain.close(), hedge.close()
            if hedged.alive():
                hedged.popen.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                hedged.popen.wait(timeout=10)  # type: ignore[union-attr]

    r1, r2 = report["replicas"]["1"], report["replicas"]["2"]
    report["replication_adds_p50_ms"] = r2["p50_ms"] - r1["p50_ms"]
    report["goals"] = {"replication_adds_p50_ms<=1": report["replication_adds_p50_ms"] <= 1.0,
                       "failover_failed==0": report["failover"]["failed"] == 0,
                       "failover_partial==0": report["failover"]["partial_coverage"] == 0}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    h, g, f = report["hedging_healthy"], report["hung_replica"], report["failover"]
    print(f"\nwinnow bench replicas: {args.docs} docs, 2 shards, sequential searches (k=10, no rerank, no cache)")
    print(f"{'configuration':<34}{'p50 ms':>9}{'p99/max ms':>12}{'ratio p50':>11}")
    print(f"{'1 replica per shard':<34}{r1['p50_ms']:>9.2f}{r1['p99_ms']:>12.2f}{1.0:>11.2f}")
    print(f"{'2 replicas per shard':<34}{r2['p50_ms']:>9.2f}{r2['p99_ms']:>12.2f}{r2['p50_ms'] / r1['p50_ms']:>11.2f}")
    print(f"{'hedging off (healthy)':<34}{h['off']['p50_ms']:>9.2f}{h['off']['p99_ms']:>12.2f}{1.0:>11.2f}")
    print(f"{f'hedging on, {args.hedge_ms:g} ms (healthy)':<34}{h['on']['p50_ms']:>9.2f}{h['on']['p99_ms']:>12.2f}"
          f"{h['on']['p50_ms'] / h['off']['p50_ms']:>11.2f}")
    print(f"{'hung replica, hedging off (4 thr)':<34}{g['off']['p50_ms']:>9.2f}{g['off']['max_ms']:>12.2f}{1.0:>11.2f}")
    print(f"{'hung replica, hedging on (4 thr)':<34}{g['on']['p50_ms']:>9.2f}{g['on']['max_ms']:>12.2f}"
          f"{g['on']['p50_ms'] / g['off']['p50_ms']:>11.2f}")
    print(f"hung replica: p99 {g['off']['p99_ms']:.1f} ms off vs {g['on']['p99_ms']:.1f} ms on; failed "
          f"{g['off']['failed']} / {g['on']['failed']} of {g['off']['searches']} / {g['on']['searches']}")
    print(f"failover gap after kill -9 ({f['kills']} kills, 4 threads): p50 {f['gap_p50_ms']:.1f} ms, "
          f"max {f['gap_max_ms']:.1f} ms; {f['searches']} searches, {f['failed']} failed, "
          f"{f['partial_coverage']} with partial coverage")
    lu = report["layer_us"]
    print(f"replica layer in process: {lu['replica_set']:.1f} us per shard call vs {lu['direct']:.1f} us direct "
          f"(shards are called concurrently, so this is paid about once per search)")
    print(f"replication adds {report['replication_adds_p50_ms']:+.2f} ms to p50 (goal <= 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
