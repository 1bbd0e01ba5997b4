"""`winnow bench log`: acknowledged write throughput into the document log, against the old write-ahead-log path,
and how long a wiped replica takes to rebuild from the log. Vectors are precomputed (the embedder is not measured).

Rows (all in one run, on this machine, so the ratios compare like with like):

- `log (JetStream)`: documents/s acknowledged by a local nats-server (JetStream file store, default sync), sent
  the way the gateway sends them: every partition's part at once, all in flight (`DocumentLog.acknowledged`), wait
  for every ack;
- `log, sync_interval=always`: the same with JetStream fsyncing every write (what a single node needs to survive a
  power loss; Kubernetes uses R3 instead);
- `WAL (before)`: the pre-JetStream path, measured from a checkout of that tree (`--wal-src DIR`, e.g.
  `git archive b53b7fb src | tar -x -C /tmp/walbase`): the gateway's batches of 256 sent as Upsert RPCs to real
  shard processes, acknowledged after the shard validated, fsynced its own write-ahead log and applied the batch;
- `applied by replicas`: how long until R=1 replica per partition (HNSW32,Flat, dim 384) has applied all of it;
- `rebuild`: a replica whose data dir was deleted, restarted: seconds until SERVING (caught up), per 100k documents
  (extrapolated linearly from the measured size; the HNSW insert dominates and is ~linear at these sizes).

    winnow bench log --docs 20000 --wal-src /tmp/walbase/src
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384
BATCH = 256


def _docs(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"doc-{i}" for i in range(n)]
    texts = [f"synthetic document {i} " + "lorem ipsum dolor " * 10 for i in range(n)]
    return ids, vecs, texts


async def _log_writes(url: str, layout: str, n: int, partitions: int) -> float:
    """Documents/s acknowledged, batches of BATCH documents, partitions written at once (the gateway's way)."""
    from winnow.log import codec
    from winnow.log.client import DocumentLog, LogConfig, Message
    from winnow.services.gateway import routing

    ids, vecs, texts = _docs(n)
    doc_log = DocumentLog(LogConfig(url=url))
    for p in range(partitions):
        await doc_log.ensure_stream(layout, p)
    t = time.perf_counter()
    for start in range(0, n, BATCH):
        part = range(start, min(n, start + BATCH))
        msgs = [Message(ids[i], codec.encode_upsert(ids[i], vecs[i], texts[i], "{}")) for i in part]
        groups = routing.group_by_shard([ids[i] for i in part], partitions)
        results = await asyncio.gather(*(doc_log.append(layout, p, [msgs[k] for k in pos], 30)
                                         for p, pos in groups.items()))
        assert all(r.complete for r in results), [r.error for r in results]
    rate = n / (time.perf_counter() - t)
    await doc_log.close()
    return rate


_WAL_HARNESS = r"""
import json, os, subprocess, sys, tempfile, time, concurrent.futures as cf
from pathlib import Path
import numpy as np, grpc
from winnow.api.internal.index.v1 import index_pb2 as pb, index_pb2_grpc as pbg
n, shards, dim, batch = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
work = Path(tempfile.mkdtemp(prefix="wal-bench-"))
procs, ports = [], []
for s in range(shards):
    ready = work / f"r{s}.json"
    procs.append(subprocess.Popen([sys.executable, "-m", "winnow.services.index", "--port", "0", "--metrics-port", "0",
        "--data-dir", str(work / f"s{s}"), "--dim", str(dim), "--ready-file", str(ready), "--fsync",
        "--coarse-dims", "64,128", "--log-level", "WARNING"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    while not ready.exists():
        time.sleep(0.05)
    time.sleep(0.1)
    ports.append(json.loads(ready.read_text())["port"])
rng = np.random.default_rng(0)
vecs = rng.standard_normal((n, dim)).astype(np.float32)
vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
from winnow.services.gateway.routing import group_by_shard
ids = [f"doc-{i}" for i in range(n)]
stubs = [pbg.IndexShardStub(grpc.insecure_channel(f"127.0.0.1:{p}")) for p in ports]
def send(s, pos):
    req = pb.UpsertRequest(documents=[pb.Document(id=ids[i], vector=vecs[i].tolist(),
        text=f"synthetic document {i} " + "lorem ipsum dolor " * 10, metadata_json="{}") for i in pos])
    stubs[s].Upsert(req, timeout=120)
pool = cf.ThreadPoolExecutor(shards)
t = time.perf_counter()
for start in range(0, n, batch):
    part = list(range(start, min(n, start + batch)))
    groups = group_by_shard([ids[i] for i in part], shards)
    list(pool.map(lambda kv: send(kv[0], [part[k] for k in kv[1]]), groups.items()))
rate = n / (time.perf_counter() - t)
for p in procs:
    p.kill()
print(json.dumps({"docs_per_s": rate}))
"""


def _wal_baseline(src: str, n: int, partitions: int) -> float | None:
    if not src:
        return None
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run([sys.executable, "-c", _WAL_HARNESS, str(n), str(partitions), str(DIM), str(BATCH)],
                         env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        print(out.stderr[-2000:], file=sys.stderr)
        return None
    return float(json.loads(out.stdout.strip().splitlines()[-1])["docs_per_s"])


def run(args: argparse.Namespace) -> dict:
    from winnow.cluster import nats as nats_proc
    from winnow.cluster.launcher import ClusterConfig, LocalCluster

    work = Path(tempfile.mkdtemp(prefix="winnow-bench-log-"))
    report: dict = {"docs": args.docs, "partitions": args.partitions, "dim": DIM, "batch": BATCH}
    try:
        # Interleaved rounds (the order flips each round) so a busy moment of a shared machine hits every row.
        runs: dict[str, list[float]] = {"log": [], "log_sync": [], "wal": []}
        for rnd in range(args.rounds):
            order = ["log", "log_sync", "wal"] if rnd % 2 == 0 else ["wal", "log_sync", "log"]
            for what in order:
                if what == "wal":
                    rate = _wal_baseline(args.wal_src, args.docs, args.partitions)
                    if rate is not None:
                        runs["wal"].append(rate)
                    continue
                node = nats_proc.single(work / f"{what}-{rnd}", sync_always=what == "log_sync").start().wait()
                runs[what].append(asyncio.run(_log_writes(node.url, "B0", args.docs, args.partitions)))
                node.stop()
        report["rounds"] = {k: [round(v) for v in vs] for k, vs in runs.items()}
        report["log_docs_per_s"] = float(np.median(runs["log"]))
        report["log_sync_docs_per_s"] = float(np.median(runs["log_sync"]))
        report["wal_docs_per_s"] = float(np.median(runs["wal"])) if runs["wal"] else None

        # Replicas applying, then a rebuild of one wiped replica.
        cfg = ClusterConfig(data_dir=work / "cluster", shards=args.partitions, replicas=1, replicas_only=True,
                            service_args={"index": ["--dim", str(DIM), "--log-level", "WARNING"]})
        with LocalCluster(cfg) as c:
            t = time.perf_counter()
            asyncio.run(_log_writes(c.log_url, c.layout, args.docs, args.partitions))
            acked_s = time.perf_counter() - t
            asyncio.run(_wait_applied(c, args.docs))
            report["applied_docs_per_s"] = args.docs / (time.perf_counter() - t)
            report["acked_with_replicas_docs_per_s"] = args.docs / acked_s
            name = "shard-0-r0"
            per_shard = _stats(c.procs[name].address).count
            c.kill(name)
            t = time.perf_counter()
            c.restart(name, wipe=True)
            rebuild = time.perf_counter() - t
            report["rebuild_docs"] = per_shard
            report["rebuild_s"] = rebuild
            report["rebuild_s_per_100k"] = rebuild * 100_000 / max(1, per_shard)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def _stats(address: str):
    import grpc

    from winnow.api.internal.index.v1 import index_pb2 as pb
    from winnow.api.internal.index.v1 import index_pb2_grpc as pbg

    with grpc.insecure_channel(address) as ch:
        return pbg.IndexShardStub(ch).Stats(pb.StatsRequest(), timeout=30)


async def _wait_applied(cluster, total: int, timeout: float = 1800) -> None:
    end = time.monotonic() + timeout
    while sum(_stats(p.address).count for p in cluster.procs.values() if p.kind == "index") < total:
        if time.monotonic() > end:
            raise TimeoutError("replicas did not apply the log in time")
        await asyncio.sleep(0.1)


def _table(r: dict) -> str:
    base = r["log_docs_per_s"]
    rows = [("log (JetStream), default sync", r["log_docs_per_s"]),
            ("log, sync_interval=always", r["log_sync_docs_per_s"]),
            ("WAL (before: shard fsync + apply)", r["wal_docs_per_s"]),
            ("log, with a replica per partition applying", r["acked_with_replicas_docs_per_s"]),
            ("applied by the replicas (HNSW32,Flat)", r["applied_docs_per_s"])]
    out = [f"{r['docs']} documents, dim {r['dim']}, {r['partitions']} partitions, batches of {r['batch']}; "
           f"medians of {len(r['rounds']['log'])} interleaved rounds {r['rounds']}",
           f"{'write path':<44} {'docs/s':>10} {'vs log':>8}"]
    for name, v in rows:
        if v is None:
            out.append(f"{name:<44} {'(not run: --wal-src)':>19}")
        else:
            out.append(f"{name:<44} {v:>10.0f} {v / base:>7.2f}x")
    if r["wal_docs_per_s"]:
        out.append(f"log / WAL = {r['log_docs_per_s'] / r['wal_docs_per_s']:.2f}x, "
                   f"sync=always / WAL = {r['log_sync_docs_per_s'] / r['wal_docs_per_s']:.2f}x")
    out.append(f"rebuild of a wiped replica: {r['rebuild_docs']} docs in {r['rebuild_s']:.1f} s "
               f"= {r['rebuild_s_per_100k']:.0f} s per 100k documents (extrapolated linearly)")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="winnow bench log", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--wal-src", default="", help="src/ of a pre-JetStream checkout, for the WAL baseline row")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the write-path rows (medians)")
    ap.add_argument("--quick", action="store_true", help="2,000 documents")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.docs = 2000
    report = run(args)
    print(json.dumps(report, indent=2) if args.json else _table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
