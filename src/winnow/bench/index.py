"""`winnow bench index`: build time, memory, recall@80 vs exact and batch-1 QPS / p50 / p99 of Flat, HNSW and IVF
on structured synthetic data, and the shard service over gRPC vs the same FAISS index in-process.

Data: `faiss.contrib.datasets.SyntheticDataset` (vectors from a random low-rank non-linear map, as FAISS's own
tests use), L2-normalised, inner product. Uniform random 384-d vectors are not used: no ANN index works on them,
which says nothing about real embeddings. Recall is tolerant of ties: a returned id counts when its exact score
reaches the exact 80th score.

The default (HNSW) index is built *by the shard core* (the same code path as Upsert, without fsync), snapshotted,
and then served by a real `python -m winnow.services.index` subprocess that loads that snapshot; in-process numbers
are the very same FAISS index object searched directly. Client and server share the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import grpc
import numpy as np
from faiss.contrib.datasets import SyntheticDataset
from grpc_health.v1 import health_pb2, health_pb2_grpc

from winnow.api.internal.index.v1 import index_pb2 as pb
from winnow.api.internal.index.v1 import index_pb2_grpc as pb_grpc
from winnow.services.index.model import Doc, SearchQuery
from winnow.services.index.settings import IndexSettings
from winnow.services.index.shard import Shard
from winnow.services.index.vectors import VectorStore, set_omp_threads

K = 80


def _rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _unit(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def _recall(got: np.ndarray, exact_scores: np.ndarray, xb: np.ndarray, q: np.ndarray) -> float:
    """Tie-tolerant recall@K of one query: returned ids whose exact score reaches the exact K-th score."""
    got = got[got >= 0]
    return float(((xb[got] @ q) >= exact_scores[K - 1] - 1e-5).sum()) / K


def _latency(fn, queries: np.ndarray) -> dict:
    fn(queries[0])  # warm
    lat = []
    t0 = time.perf_counter()
    for q in queries:
        t = time.perf_counter()
        fn(q)
        lat.append((time.perf_counter() - t) * 1000)
    wall = time.perf_counter() - t0
    return {"qps": round(len(queries) / wall, 1), "p50_ms": round(float(np.percentile(lat, 50)), 3),
            "p99_ms": round(float(np.percentile(lat, 99)), 3), "queries": len(queries)}


def _measure(name: str, index: faiss.Index, params, xb, xq, gt_scores, n_timed: int, build_s: float, mem_mb: float):
    ids = [index.search(q.reshape(1, -1), K, params=params)[1][0] for q in xq]
    recall = float(np.mean([_recall(i, s, xb, q) for i, s, q in zip(ids, gt_scores, xq)]))
    lat = _latency(lambda q: index.search(q.reshape(1, -1), K, params=params), xq[:n_timed])
    return {"index": name, "build_s": round(build_s, 1), "memory_mb": round(mem_mb, 1),
            "recall@80": round(recall, 4), **lat}


def _parallel(fn, queries: np.ndarray, concurrency: int) -> dict:
    """QPS with `concurrency` threads each issuing batch-1 searches (FAISS releases the GIL)."""
    fn(queries[0])
    lat: list[float] = []

    def timed(q) -> None:
        t = time.perf_counter()
        fn(q)
        lat.append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency, initializer=set_omp_threads, initargs=(1,)) as pool:
        list(pool.map(timed, queries))
    wall = time.perf_counter() - t0
    return {"concurrency": concurrency, "qps": round(len(queries) / wall, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 3), "p99_ms": round(float(np.percentile(lat, 99)), 3),
            "queries": len(queries)}


def _start_server(data_dir: str, dim: int, ef: int, inline_ms: float | None = None) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "winnow.services.index", "--port", "0", "--data-dir", data_dir, "--dim", str(dim),
         "--no-fsync", "--default-ef-search", str(ef), "--log-level", "INFO",
         *([] if inline_ms is None else ["--inline-search-ms", str(inline_ms)])],
        stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # the port comes from the service's own 'listening' line
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("msg") == "listening":
            return proc, int(rec["grpc_port"])
    raise RuntimeError(f"index service exited with {proc.wait()}")


def _served(port: int, xq: np.ndarray, concurrency: int, payloads: bool) -> dict:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 1 << 26)])
    grpc.channel_ready_future(channel).result(timeout=600)
    health = health_pb2_grpc.HealthStub(channel)
    for resp in health.Watch(health_pb2.HealthCheckRequest(), timeout=600, wait_for_ready=True):
        if resp.status == health_pb2.HealthCheckResponse.SERVING:
            break
    stub = pb_grpc.IndexShardStub(channel)
    reqs = [pb.SearchRequest(vector=q.tolist(), k=K, include_payloads=payloads) for q in xq]

    server_ms: list[float] = []

    def one(r):
        res = stub.Search(r, timeout=30)
        server_ms.append(res.timings_ms.get("dense", 0.0) + res.timings_ms.get("queue", 0.0))

    if concurrency == 1:
        out = {"concurrency": 1, **_latency(lambda i: one(reqs[int(i)]), np.arange(len(reqs)))}
    else:
        out = _parallel(lambda i: one(reqs[int(i)]), np.arange(len(reqs)), concurrency)
    channel.close()
    return {"include_payloads": payloads, **out, "server_search_p50_ms": round(float(np.percentile(server_ms, 50)), 3)}


def run(args: argparse.Namespace) -> dict:
    def log(*a) -> None:
        print(*a, file=sys.stderr, flush=True)

    d, nb, nq = args.dim, args.size, args.queries
    threads = faiss.omp_get_max_threads()
    t = time.perf_counter()
    ds = SyntheticDataset(d, min(50_000, nb), nb, nq, metric="IP", seed=1338)
    xb, xq, xt = _unit(ds.get_database()), _unit(ds.get_queries()), _unit(ds.get_train())
    log(f"data {nb}x{d} in {time.perf_counter() - t:.1f}s")

    rss0, t = _rss_mb(), time.perf_counter()
    flat = faiss.IndexFlatIP(d)
    flat.add(xb)
    flat_build, flat_mem = time.perf_counter() - t, _rss_mb() - rss0
    gt_scores, _ = flat.search(xq, K)  # ground truth as one batch, all cores
    set_omp_threads(1)  # batch-1 searches run single-threaded, as the shard's search threads do
    results = [_measure("Flat", flat, None, xb, xq, gt_scores, args.flat_queries, flat_build, flat_mem)]
    log(results[-1])
    del flat

    # Default index, built by the shard core (same path as Upsert), then snapshotted for the served run.
    work = tempfile.mkdtemp(prefix="winnow-bench-index-")
    settings = IndexSettings(data_dir=work, dim=d, fsync=False, snapshot_every=10**9, coarse_dims=[],
                             default_ef_search=args.ef_search)
    faiss.omp_set_num_threads(threads)  # builds use every core, as the shard's writer thread does
    rss0, t = _rss_mb(), time.perf_counter()
    shard = Shard(settings.shard_config())
    shard.open()
    for a in range(0, nb, 10_000):
        shard.upsert([Doc(f"d{i}", xb[i], f"synthetic document {i}", '{"i": %d}' % i) for i in range(a, min(a + 10_000, nb))])
    build, mem = time.perf_counter() - t, _rss_mb() - rss0
    set_omp_threads(1)
    index = shard.state.vectors.index
    hnsw_params = faiss.SearchParametersHNSW(efSearch=args.ef_search)
    default = _measure(f"{settings.index_factory} (shard default, efSearch {args.ef_search})", index, hnsw_params,
                       xb, xq, gt_scores, nq, build, mem)
    default["memory_note"] = "shard RSS growth: FAISS index (holding the vectors) + ids, payloads, metadata postings"
    results.append(default)
    log(results[-1])
    core = _latency(lambda q: shard.search(SearchQuery(q, K)), xq)
    inproc4 = _parallel(lambda q: index.search(q.reshape(1, -1), K, params=hnsw_params), xq, 4)
    shard.close()  # writes the snapshot the server loads
    del shard, index

    faiss.omp_set_num_threads(threads)
    rss0, t = _rss_mb(), time.perf_counter()
    ivf = faiss.index_factory(d, f"IVF{args.nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    ivf.train(xt)
    ivf.add(xb)
    ivf_build, ivf_mem = time.perf_counter() - t, _rss_mb() - rss0
    set_omp_threads(1)
    results.append(_measure(f"IVF{args.nlist},Flat (nprobe {args.nprobe})", ivf, faiss.SearchParametersIVF(nprobe=args.nprobe),
                            xb, xq, gt_scores, nq, ivf_build, ivf_mem))
    log(results[-1])
    del ivf

    threaded_dir = work + "-threads"
    shutil.copytree(work, threaded_dir)
    proc, port = _start_server(work, d, args.ef_search)
    threaded, tport = _start_server(threaded_dir, d, args.ef_search, inline_ms=0)  # every search on a thread
    try:
        served = [_served(port, xq, 1, False)]
        server_rss = _rss_mb(proc.pid)
        served += [_served(port, xq, 1, True), _served(port, xq, 4, False)]
        # Inline (the default: quick searches on the event loop) vs every search handed to a search thread,
        # alternated so load from elsewhere hits both alike.
        hop = {"inline": [], "threads": []}
        for order in (("inline", "threads"), ("threads", "inline"), ("inline", "threads"), ("threads", "inline")):
            for mode in order:
                hop[mode].append(_served(port if mode == "inline" else tport, xq, 1, False))
        log(served, hop)
    finally:
        for p in (proc, threaded):
            p.send_signal(signal.SIGTERM)
        for p in (proc, threaded):
            p.wait(timeout=120)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(threaded_dir, ignore_errors=True)
    ratio = served[0]["qps"] / default["qps"]
    hop_p50 = {m: round(float(np.median([x["p50_ms"] for x in xs])), 3) for m, xs in hop.items()}
    return {
        "size": nb, "dim": d, "queries": nq, "k": K, "data": "faiss SyntheticDataset (IP, L2-normalised)",
        "cpu_count": os.cpu_count(), "faiss": faiss.__version__,
        "indexes": results,
        "shard_core_inprocess": core,
        "served": served,
        "server_rss_mb": round(server_rss, 1),
        "served_vs_inprocess_qps": round(ratio, 3),
        "inprocess_concurrency4": inproc4,
        "served_vs_inprocess_qps_concurrency4": round(served[2]["qps"] / inproc4["qps"], 3),
        "served_p50_ms_inline_vs_threads": hop_p50,
        "served_inline_vs_threads_p50": round(hop_p50["inline"] / hop_p50["threads"], 3),
        "default_index": settings.index_factory,
        "default_recall@80": default["recall@80"],
    }


def mrl_study(cache: Path, dataset: Path) -> dict:
    """Recall@80 of the MRL coarse-to-fine sweep vs exact full-dimension search on real SciFact embeddings
    (all-MiniLM-L6-v2, cached by studies/scifact_embeddings.py), test queries only."""
    import csv
    import gzip

    xb = np.load(cache / "scifact_minilm_title_text_256.npy").astype(np.float32)
    xq = np.load(cache / "scifact_minilm_queries_256.npy").astype(np.float32)
    qids = json.loads((cache / "scifact_minilm_queries_256.ids.json").read_text())
    qrels = dataset / "qrels" / "test.tsv"
    opener = gzip.open if not qrels.exists() else open
    with opener(qrels if qrels.exists() else qrels.with_suffix(".tsv.gz"), "rt") as f:
        test = {row[0] for row in csv.reader(f, delimiter="\t")}
    xq = xq[[i for i, q in enumerate(qids) if str(q) in test]]
    store = VectorStore(xb.shape[1], "Flat", [64, 128])
    store.add(xb)
    mask = store.live_mask()
    exact = [set(store.exact(q, K, mask)[1].tolist()) for q in xq]
    rows = []
    for dim in (64, 128, 192):
        for cand in (K, 4 * K, 8 * K):
            recall = []
            for q, ex in zip(xq, exact):
                _, c = store.coarse_topk(q, cand, mask, dim)
                top = c[np.argsort(-store.rescore(q, c), kind="stable")[:K]]
                recall.append(len(ex & set(top.tolist())) / K)
            rows.append({"coarse_dim": dim, "coarse_candidates": cand, "recall@80": round(float(np.mean(recall)), 4)})
    return {"corpus": int(xb.shape[0]), "queries": int(xq.shape[0]), "model": "all-MiniLM-L6-v2 (not MRL-trained)",
            "rows": rows}


def _table(r: dict) -> str:
    rows = ["| index | build s | memory MB | recall@80 | QPS (batch 1) | p50 ms | p99 ms |", "|---|---|---|---|---|---|---|"]
    for x in r["indexes"]:
        rows.append(f"| {x['index']} | {x['build_s']} | {x['memory_mb']} | {x['recall@80']} | {x['qps']} | "
                    f"{x['p50_ms']} | {x['p99_ms']} |")
    c = r["shard_core_inprocess"]
    rows.append(f"| shard core in-process (Shard.search) | | | | {c['qps']} | {c['p50_ms']} | {c['p99_ms']} |")
    c = r["inprocess_concurrency4"]
    rows.append(f"| default index in-process, 4 threads | | | | {c['qps']} | {c['p50_ms']} | {c['p99_ms']} |")
    for s in r["served"]:
        rows.append(f"| served over gRPC, concurrency {s['concurrency']}, payloads {s['include_payloads']} | | "
                    f"{r['server_rss_mb']} (server RSS) | | {s['qps']} | {s['p50_ms']} | {s['p99_ms']} |")
    rows.append(f"\nserved / in-process QPS (batch 1, one in flight): {r['served_vs_inprocess_qps']}; "
                f"4 in flight vs 4 in-process threads: {r['served_vs_inprocess_qps_concurrency4']}; "
                f"default recall@80: {r['default_recall@80']}")
    h = r["served_p50_ms_inline_vs_threads"]
    rows.append(f"served p50, one in flight, alternated 4x: searches inline on the event loop {h['inline']} ms vs "
                f"handed to a search thread {h['threads']} ms (ratio {r['served_inline_vs_threads_p50']})")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="winnow bench index", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--size", type=int, default=200_000, help="database vectors (1000000 for the 1M run)")
    p.add_argument("--dim", type=int, default=384, help="vector dimension (384 = all-MiniLM-L6-v2)")
    p.add_argument("--queries", type=int, default=500, help="queries for recall and ANN/served QPS")
    p.add_argument("--flat-queries", type=int, default=50, help="timed queries for exact Flat (slow)")
    p.add_argument("--ef-search", type=int, default=128, help="HNSW efSearch")
    p.add_argument("--nlist", type=int, default=1024, help="IVF lists")
    p.add_argument("--nprobe", type=int, default=32, help="IVF lists probed per query")
    p.add_argument("--quick", action="store_true", help="small run: 20k vectors, 200 queries, IVF256")
    p.add_argument("--mrl", action="store_true",
                   help="only the MRL study on cached SciFact embeddings (run studies/scifact_embeddings.py first)")
    p.add_argument("--embeddings", type=Path, default=Path("/tmp/winnow-research"), help="embedding cache for --mrl")
    p.add_argument("--dataset", type=Path, default=Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "scifact", help="BEIR dir for --mrl")
    args = p.parse_args(argv)
    if args.mrl:
        study = mrl_study(args.embeddings, args.dataset)
        print(json.dumps(study, indent=2) if args.json else "\n".join(
            f"| {r['coarse_dim']} | {r['coarse_candidates']} | {r['recall@80']} |" for r in study["rows"]))
        return 0
    if args.quick:
        args.size, args.queries, args.nlist, args.nprobe = 20_000, 200, 256, 16
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else _table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
