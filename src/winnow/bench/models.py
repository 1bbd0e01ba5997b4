"""`winnow bench models`: served (gRPC) vs in-process throughput and latency of the embedder and the reranker.

One run, the same SciFact texts for every measurement (the first N abstracts, title + text):
- embed: in-process `SentenceTransformer.encode` (batch 32) vs the embedder service (a subprocess on loopback,
  max_batch_size 32) given the same texts in one request; also in 32-text requests, 8 concurrent. The texts go in
  5 slices, in-process and served alternating, so load from other processes hits both sides alike;
- rerank: pairs/s of the default scorer in-process (`scorer.score`) vs served (one Rerank of 80 candidates per
  query, fresh token cache on both sides, the same request sequence, alternating request by request);
- latency p50/p99: embedding one query, reranking 80 candidates (served, sequential; in-process for reference).
Ratios served/in-process are printed and, with --json, written as `embed_served_vs_inprocess` and
`rerank_served_vs_inprocess` (goal >= 0.95).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "scifact"
WINDOW = 80


def scifact(n: int, dataset: Path) -> tuple[list[str], list[str], list[str]]:
    """The first n corpus texts (ids, texts) and the query texts."""
    ids, texts, queries = [], [], []
    with gzip.open(dataset / "corpus.jsonl.gz", "rt") as fh:
        for line in fh:
            d = json.loads(line)
            ids.append(d["_id"])
            texts.append((d["title"] + " " + d["text"]).strip())
            if len(ids) >= n:
                break
    with gzip.open(dataset / "queries.jsonl.gz", "rt") as fh:
        queries = [json.loads(line)["text"] for line in fh]
    return ids, texts, queries


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs) * 1000.0, q)) if xs else 0.0


class Served:
    """A service started as `python -m winnow.services.<name>` on a free loopback port; stopped with SIGTERM."""

    def __init__(self, name: str, flags: list[str]) -> None:
        self.name = name
        self._dir = tempfile.TemporaryDirectory()
        ready = Path(self._dir.name) / "ready.json"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"winnow.services.{name}", "--port", "0", "--ready-file", str(ready),
             "--log-level", "WARNING", *flags],
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 180
        while not ready.exists():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{name} did not become ready (exit code {self.proc.poll()})")
            time.sleep(0.1)
        self.port = json.loads(ready.read_text())["port"]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._dir.cleanup()


async def _embed_served(stub, pb, texts: list[str]) -> float:
    t0 = time.perf_counter()
    await stub.Embed(pb.EmbedRequest(texts=texts), timeout=600)
    return time.perf_counter() - t0


async def _embed_chunked(stub, pb, texts: list[str], chunk: int, conc: int) -> float:
    sem = asyncio.Semaphore(conc)

    async def part(i: int) -> None:
        async with sem:
            await stub.Embed(pb.EmbedRequest(texts=texts[i : i + chunk]), timeout=600)

    t0 = time.perf_counter()
    await asyncio.gather(*(part(i) for i in range(0, len(texts), chunk)))
    return time.perf_counter() - t0


def _slices(n: int, parts: int) -> list[slice]:
    step = max(1, -(-n // parts))
    return [slice(i, min(n, i + step)) for i in range(0, n, step)]


async def bench_embed(port: int, texts: list[str], queries: list[str], parts: int) -> dict:
    """In-process and served, interleaved slice by slice (alternating which goes first) so that load from
    other processes on the machine hits both sides alike."""
    from winnow.api.internal.embedder.v1 import embedder_pb2 as pb
    from winnow.api.internal.embedder.v1 import embedder_pb2_grpc as pb_grpc
    from winnow.rpc.channels import make_channel
    from winnow.models.encoder import SentenceTransformerEncoder

    st = SentenceTransformerEncoder(device="auto").sentence_transformer
    loop = asyncio.get_running_loop()

    def inproc(batch: list[str]) -> float:
        t0 = time.perf_counter()
        st.encode(batch, batch_size=32, normalize_embeddings=True)
        return time.perf_counter() - t0

    t_in = t_one = t_chunk = 0.0
    lat_in, lat_sv = [], []
    async with make_channel(f"127.0.0.1:{port}") as ch:
        stub = pb_grpc.EmbedderStub(ch)
        inproc(texts[:8])
        await _embed_served(stub, pb, texts[:8])
        for i, sl in enumerate(_slices(len(texts), parts)):
            part = texts[sl]
            if i % 2:
                t_one += await _embed_served(stub, pb, part)
                t_in += inproc(part)
            else:
                t_in += inproc(part)
                t_one += await _embed_served(stub, pb, part)
            t_chunk += await _embed_chunked(stub, pb, part, chunk=32, conc=8)
        for q in queries:
            t = time.perf_counter()
            st.encode([q], normalize_embeddings=True)
            lat_in.append(time.perf_counter() - t)
            t = time.perf_counter()
            await stub.Embed(pb.EmbedRequest(texts=[q], kind=pb.INPUT_KIND_QUERY), timeout=60)
            lat_sv.append(time.perf_counter() - t)
    del loop
    n = len(texts)
    return {
        "embed_inprocess_texts_per_s": n / t_in,
        "embed_served_texts_per_s": n / t_one,
        "embed_served_chunked_texts_per_s": n / t_chunk,
        "embed_served_vs_inprocess": t_in / t_one,
        "embed_served_chunked_vs_inprocess": t_in / t_chunk,
        "embed_query_p50_ms": pct(lat_sv, 50), "embed_query_p99_ms": pct(lat_sv, 99),
        "embed_query_inprocess_p50_ms": pct(lat_in, 50), "embed_query_inprocess_p99_ms": pct(lat_in, 99),
    }


async def bench_rerank(port: int, ids: list[str], texts: list[str], queries: list[str], n_requests: int,
                       n_latency: int) -> dict:
    """The default scorer in-process vs served, request by request, alternating which goes first; both sides
    start with an empty token cache and see the same request sequence."""
    from winnow.api.internal.reranker.v1 import reranker_pb2 as pb
    from winnow.api.internal.reranker.v1 import reranker_pb2_grpc as pb_grpc
    from winnow.rpc.channels import make_channel
    from winnow.models.encoder import SentenceTransformerEncoder
    from winnow.models.late_interaction import LateInteractionScorer
    from winnow.models.scorer import Candidate

    docs = list(zip(ids, texts))
    # request i reranks 80 consecutive texts (wrapping): the first pass over the texts is cold, later ones warm
    requests = [(queries[i], [docs[(i * WINDOW + j) % len(docs)] for j in range(WINDOW)]) for i in range(n_requests)]
    lat_requests = [(queries[n_requests + i], requests[i % n_requests][1]) for i in range(n_latency)]
    scorer = LateInteractionScorer(SentenceTransformerEncoder(device="auto"))

    def inproc(q: str, cands) -> float:
        t0 = time.perf_counter()
        scorer.score(q, [Candidate(i, t, r + 1) for r, (i, t) in enumerate(cands)])
        return time.perf_counter() - t0

    def req(q: str, cands) -> pb.RerankRequest:
        return pb.RerankRequest(query=q, candidates=[pb.Candidate(id=i, text=t, first_stage_rank=r + 1)
                                                     for r, (i, t) in enumerate(cands)])

    async def served(q: str, cands) -> float:
        t0 = time.perf_counter()
        await stub.Rerank(req(q, cands), timeout=600)
        return time.perf_counter() - t0

    t_in = t_sv = 0.0
    lat_in, lat_sv = [], []
    async with make_channel(f"127.0.0.1:{port}") as ch:
        stub = pb_grpc.RerankerStub(ch)
        for i, (q, cands) in enumerate(requests):
            if i % 2:
                t_sv += await served(q, cands)
                t_in += inproc(q, cands)
            else:
                t_in += inproc(q, cands)
                t_sv += await served(q, cands)
        for q, cands in lat_requests:
            lat_in.append(inproc(q, cands))
            lat_sv.append(await served(q, cands))
    pairs = n_requests * WINDOW
    return {
        "rerank_scorer": scorer.name,
        "rerank_requests": n_requests,
        "rerank_inprocess_pairs_per_s": pairs / t_in,
        "rerank_served_pairs_per_s": pairs / t_sv,
        "rerank_served_vs_inprocess": t_in / t_sv,
        "rerank_80_p50_ms": pct(lat_sv, 50), "rerank_80_p99_ms": pct(lat_sv, 99),
        "rerank_80_inprocess_p50_ms": pct(lat_in, 50), "rerank_80_inprocess_p99_ms": pct(lat_in, 99),
    }


def table(r: dict) -> str:
    rows = [
        ("embed texts/s (1000 texts)", r["embed_inprocess_texts_per_s"], r["embed_served_texts_per_s"],
         r["embed_served_vs_inprocess"]),
        ("embed texts/s (32-text requests x8)", r["embed_inprocess_texts_per_s"],
         r["embed_served_chunked_texts_per_s"], r["embed_served_chunked_vs_inprocess"]),
        ("rerank pairs/s (80 per request)", r["rerank_inprocess_pairs_per_s"], r["rerank_served_pairs_per_s"],
         r["rerank_served_vs_inprocess"]),
    ]
    out = [f"{'measure':<38} {'in-process':>11} {'served':>9} {'ratio':>6}"]
    out += [f"{n:<38} {a:>11.1f} {b:>9.1f} {c:>6.2f}" for n, a, b, c in rows]
    out.append(f"{'latency (ms)':<38} {'p50':>11} {'p99':>9}")
    for label, key in (("embed 1 query, served", "embed_query"), ("embed 1 query, in-process", "embed_query_inprocess"),
                       ("rerank 80, served", "rerank_80"), ("rerank 80, in-process", "rerank_80_inprocess")):
        out.append(f"{label:<38} {r[key + '_p50_ms']:>11.1f} {r[key + '_p99_ms']:>9.1f}")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    """Run the benchmark; prints a table (and JSON with --json). Returns the exit code."""
    p = argparse.ArgumentParser(prog="winnow bench models", description=__doc__,
                                formatter_class=type("Fmt", (argparse.RawDescriptionHelpFormatter,
                                                             argparse.ArgumentDefaultsHelpFormatter), {}))
    p.add_argument("--texts", type=int, default=1000, help="SciFact texts to embed (and rerank from)")
    p.add_argument("--quick", action="store_true", help="200 texts, fewer latency samples (a smoke run)")
    p.add_argument("--json", action="store_true", help="print only the results as JSON on stdout (the table goes "
                   "to stderr)")
    p.add_argument("--threads", type=int, default=1, help="torch threads, both sides (1: on a shared 2-core box "
                   "more threads oversubscribe the CPU and single-query latency suffers)")
    p.add_argument("--dataset", type=Path, default=DATA, help="BEIR SciFact directory")
    a = p.parse_args(argv)
    n = 200 if a.quick else a.texts
    n_lat = 10 if a.quick else 50
    n_req = max(2, (2 * n) // WINDOW) if not a.quick else 3
    import torch

    import winnow.models  # noqa: F401 - pins the Hugging Face libraries offline

    torch.set_num_threads(a.threads)
    ids, texts, queries = scifact(n, a.dataset)
    result = {"texts": n, "threads": a.threads, "device": "cuda" if torch.cuda.is_available() else "cpu"}
    threads = ["--threads", str(a.threads)]
    embedder = Served("embedder", ["--max-batch-size", "32", "--max-texts", str(n), *threads])
    try:
        result.update(asyncio.run(bench_embed(embedder.port, texts, queries[:n_lat], parts=5)))
    finally:
        embedder.close()
    reranker = Served("reranker", threads)
    try:
        result.update(asyncio.run(bench_rerank(reranker.port, ids, texts, queries, n_req, n_lat)))
    finally:
        reranker.close()
    if a.json:
        print(table(result), file=sys.stderr)
        print(json.dumps(result, indent=1))
    else:
        print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
