"""Hardening figures on real processes (docs/hardening.md): overload shedding and abandoned-work CPU.

    python bench/hardening.py overload [--docs 1000] [--concurrency 128] [--duration 20] [--max-concurrent N]
    python bench/hardening.py cancel   [--docs 80] [--deadline 0.5]

`overload`: a private local cluster (2 shards, sample corpus), then (1) a warm pass over `--queries` queries,
(2) the unloaded latency of the same queries sent one at a time, uncached, and (3) `--concurrency` clients sending uncached searches back to back for `--duration` s with
a 10 s deadline each. Prints admitted p50/p99 against unloaded p99, refusals and their latency, and the share
of admitted answers that were reranked. `--max-concurrent 0` turns the gateway's admission gate off (the old
behaviour) for comparison.

`cancel`: a reranker alone; the CPU time (user + system, from /proc) one full cold Rerank of `--docs` candidates
costs, then the CPU it spends after a Rerank of the same size whose caller's deadline is `--deadline` s
(fresh texts, so neither run hits the token-vector cache). Goal: <= 10% of the full job after the deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _pct(xs, p) -> float:
    return float(np.percentile(np.asarray(xs), p)) if len(xs) else float("nan")


def _cluster(tmp: str, gateway_args: list[str], reranker: bool = True):
    from winnow.cluster.launcher import ClusterConfig, LocalCluster

    cfg = ClusterConfig(data_dir=Path(tmp), shards=2, gateway_port=0, cache="off", reranker=reranker,
                        service_args={"gateway": gateway_args})
    return LocalCluster(cfg).start()


def _ingest(target: str, n: int) -> list[str]:
    from winnow.client import WinnowClient
    from winnow.ingest import document_from_record, ingest
    import gzip
    import json

    docs = []
    with gzip.open(ROOT / "data/scifact-sample.jsonl.gz", "rt") as fh:
        for line in fh:
            docs.append(document_from_record(json.loads(line)))
            if len(docs) >= n:
                break
    with WinnowClient(target, timeout=600) as client:
        ingest(client, docs, total=len(docs), progress=False)
    with gzip.open(ROOT / "data/scifact-sample-queries.jsonl.gz", "rt") as fh:
        return [json.loads(line)["text"] for line in fh]


async def _load(target: str, queries: list[str], concurrency: int, duration: float, deadline: float):
    import grpc

    from winnow.api.gateway.v1 import gateway_pb2_grpc
    from winnow.client import search_request

    ok, refused, other, reranked = [], [], {}, 0
    stop = time.perf_counter() + duration
    async with grpc.aio.insecure_channel(target) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)

        async def client(c: int) -> None:
            nonlocal reranked
            i, backoff = c, 0.0
            while time.perf_counter() < stop:
                q = queries[i % len(queries)]
                i += concurrency
                t = time.perf_counter()
                try:
                    r = await stub.Search(search_request(q, k=10, no_cache=True), timeout=deadline)
                    backoff = 0.0
                    ok.append(time.perf_counter() - t)
                    reranked += r.reranked
                except grpc.aio.AioRpcError as err:
                    if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        refused.append(time.perf_counter() - t)
                        # A polite client: the server's hint, doubled per refusal in a row (capped), with jitter.
                        hint = int(dict(err.trailing_metadata() or ()).get("retry-after-ms", "50")) / 1000
                        backoff = min(2.0, max(backoff * 2, hint))
                        await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                        continue
                    else:
                        other[err.code().name] = other.get(err.code().name, 0) + 1

        await asyncio.gather(*(client(c) for c in range(concurrency)))
    return ok, refused, other, reranked


def overload(args) -> None:
    from winnow.client import WinnowClient

    gw_args = [] if args.max_concurrent is None else ["--max-concurrent", str(args.max_concurrent)]
    with tempfile.TemporaryDirectory(prefix="winnow-overload-") as tmp:
        cluster = _cluster(tmp, gw_args)
        try:
            queries = _ingest(cluster.gateway, args.docs)[: args.queries]
            lat = []
            with WinnowClient(cluster.gateway, timeout=60) as client:
                for q in queries:  # warm pass: the reranker's token vectors of these queries' candidates
                    client.search(q, k=10, no_cache=True)
                for q in queries:  # the unloaded baseline: the same queries, one at a time
                    t = time.perf_counter()
                    client.search(q, k=10, no_cache=True)
                    lat.append(time.perf_counter() - t)
            ok, refused, other, reranked = asyncio.run(
                _load(cluster.gateway, queries, args.concurrency, args.duration, args.deadline))
        finally:
            cluster.stop()
    un99 = _pct(lat, 99) * 1000
    print(f"overload: {args.docs} docs, 2 shards, gateway max_concurrent="
          f"{'default' if args.max_concurrent is None else args.max_concurrent}, {args.concurrency} clients x "
          f"{args.duration:.0f} s, {args.deadline:.0f} s deadline (machine shared; same-run ratios)")
    print("| measure | value |\n|---|---|")
    print(f"| unloaded p50 / p99 (ms, {len(lat)} sequential) | {_pct(lat, 50) * 1000:.0f} / {un99:.0f} |")
    print(f"| admitted answers | {len(ok)} ({reranked} reranked, {reranked / max(1, len(ok)):.0%}) |")
    print(f"| admitted p50 / p99 (ms) | {_pct(ok, 50) * 1000:.0f} / {_pct(ok, 99) * 1000:.0f} |")
    print(f"| admitted p99 / unloaded p99 | {_pct(ok, 99) * 1000 / un99:.2f} |")
    print(f"| refused (RESOURCE_EXHAUSTED) | {len(refused)} |")
    print(f"| refusal p50 / p99 (ms) | {_pct(refused, 50) * 1000:.1f} / {_pct(refused, 99) * 1000:.1f} |")
    print(f"| other errors | {other or 'none'} |")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cancel(args) -> None:
    import grpc

    from winnow.api.internal.reranker.v1 import reranker_pb2 as rpb
    from winnow.api.internal.reranker.v1 import reranker_pb2_grpc
    import gzip
    import json

    texts = []
    with gzip.open(ROOT / "data/scifact-sample.jsonl.gz", "rt") as fh:
        for line in fh:
            rec = json.loads(line)
            texts.append(f"{rec.get('title', '')} {rec['text']}")
            if len(texts) >= (1 + len(args.deadline)) * args.docs:
                break

    def request(batch: list[str], tag: str) -> rpb.RerankRequest:
        return rpb.RerankRequest(query="what lowers the risk of heart disease", candidates=[
            rpb.Candidate(id=f"{tag}-{i}", text=t, first_stage_rank=i + 1) for i, t in enumerate(batch)])

    with tempfile.TemporaryDirectory(prefix="winnow-cancel-") as tmp:
        popen, address = start_service("reranker", Path(tmp), args.reranker_arg or [])
        try:
            pid = popen.pid
            with grpc.insecure_channel(address) as ch:
                stub = reranker_pb2_grpc.RerankerStub(ch)
                settle = _settle(pid)
                c0 = _cpu_s(pid)
                t = time.perf_counter()
                stub.Rerank(request(texts[: args.docs], "full"), timeout=600)
                full_wall = time.perf_counter() - t
                full = _cpu_s(pid) - c0 - settle * full_wall
                rows = []
                for n, deadline in enumerate(args.deadline, start=1):
                    _wait_idle(pid)
                    t = time.perf_counter()
                    try:
                        stub.Rerank(request(texts[n * args.docs: (n + 1) * args.docs], f"late{n}"), timeout=deadline)
                        code = "OK"
                    except grpc.RpcError as err:
                        code = err.code().name
                    answered = time.perf_counter() - t
                    at_deadline = _cpu_s(pid)
                    _wait_idle(pid)
                    rows.append((deadline, code, answered, _cpu_s(pid) - at_deadline))
        finally:
            popen.terminate()
            popen.wait(timeout=30)
    print(f"cancel: reranker (default late-interaction scorer), {args.docs} cold candidates per Rerank, "
          f"full job {full:.2f} CPU-s ({full_wall:.2f} s wall); machine shared")
    print("| deadline (s) | status | answered after (ms) | CPU-s after the answer | / full job |\n|---|---|---|---|---|")
    for deadline, code, answered, after in rows:
        print(f"| {deadline} | {code} | {answered * 1000:.0f} | {after:.2f} | {after / max(full, 1e-9):.1%} |")


def start_service(kind: str, workdir: Path, args: list[str], env: dict[str, str] | None = None):
    """One service process on a free port; returns (popen, host:port) once its ready file exists (SERVING)."""
    import json
    import subprocess

    ready = workdir / f"{kind}.ready.json"
    log = open(workdir / f"{kind}.log", "ab")  # noqa: SIM115 - the child owns it
    popen = subprocess.Popen(
        [sys.executable, "-m", f"winnow.services.{kind}", "--port", "0", "--ready-file", str(ready), *args],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    log.close()
    end = time.monotonic() + 300
    while not ready.exists():
        if popen.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"{kind} did not start:\n{(workdir / f'{kind}.log').read_text()[-3000:]}")
        time.sleep(0.05)  # polling the file the service writes once SERVING
    return popen, f"127.0.0.1:{json.loads(ready.read_text())['port']}"


def _settle(pid: int) -> float:
    """Idle CPU rate of the process (CPU-s per s), so background threads are not billed to the job."""
    c0, t0 = _cpu_s(pid), time.perf_counter()
    time.sleep(1.0)
    return (_cpu_s(pid) - c0) / (time.perf_counter() - t0)


def _wait_idle(pid: int, quiet_s: float = 1.0, limit_s: float = 120.0) -> None:
    """Until the process burns (almost) no CPU for `quiet_s`."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        c0 = _cpu_s(pid)
        time.sleep(quiet_s)
        if _cpu_s(pid) - c0 < 0.05 * quiet_s:
            return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("overload")
    o.add_argument("--docs", type=int, default=1000)
    o.add_argument("--concurrency", type=int, default=128)
    o.add_argument("--duration", type=float, default=20.0)
    o.add_argument("--deadline", type=float, default=10.0)
    o.add_argument("--queries", type=int, default=40, help="distinct queries (warmed once, then the unloaded "
                   "baseline, then cycled by the load)")
    o.add_argument("--max-concurrent", type=int, default=None, help="gateway admission gate; default: its setting")
    c = sub.add_parser("cancel")
    c.add_argument("--docs", type=int, default=80)
    c.add_argument("--deadline", type=float, action="append", help="caller deadline(s), s (repeatable; default "
                   "0.5 and 3)")
    c.add_argument("--reranker-arg", action="append", help="extra reranker flag (repeatable)")
    args = ap.parse_args()
    if args.cmd == "cancel" and not args.deadline:
        args.deadline = [0.5, 3.0]
    overload(args) if args.cmd == "overload" else cancel(args)


if __name__ == "__main__":
    main()
