"""Run a BEIR collection through a Winnow gateway: ingest the corpus, query every pipeline, score and time it.

The runner is a plain gateway client (public API only), so it measures exactly what a caller gets: the judged
queries of the split go through ``Search`` (or ``BulkSearch`` for ``bulk``) with the cache bypassed, and every
pipeline's ranked hits are scored with :mod:`winnow.eval.metrics`. Latency per stage comes from the response's
``timings_ms`` (cache, embed, search, merge, rerank, total, as the gateway reports them) plus ``client``, the
wall time seen by this process. A query whose RPC fails counts as an empty result (it scores 0) and is counted
in ``errors``; nothing is silently dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import grpc
from google.protobuf.struct_pb2 import Struct

from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.api.gateway.v1 import gateway_pb2_grpc as pb_grpc
from winnow.eval.beir import BeirDataset, Document
from winnow.eval.metrics import mean_metrics, per_query
from winnow.eval.results import REPORTED, EvalReport, PipelineResult, bulk_summary, percentiles
from winnow.ingest import document_text as ingest_text

log = logging.getLogger(__name__)

KS = (10, 80, 100)


@dataclass(frozen=True)
class Pipeline:
    """One way of searching, as gateway SearchRequest options."""

    name: str
    retrieval: int
    rerank: bool
    mrl_dim: int = 0
    bulk: bool = False
    fusion: int = pb.FUSION_UNSPECIFIED  # hybrid only: the gateway's default (convex) unless set
    about: str = ""
    rerank_depth: int = 0  # a cascade cut sent with the request ("hybrid+rerank@30"); 0 = the reranker's setting
    first_stage: str = ""  # the pipeline whose order this one reranks (its gain is measured against it)


PIPELINES: dict[str, Pipeline] = {
    p.name: p
    for p in (
        Pipeline("lexical", pb.RETRIEVAL_LEXICAL, False, about="BM25 only, first-stage order"),
        Pipeline("dense", pb.RETRIEVAL_DENSE, False, about="dense (full dimension) only, first-stage order"),
        Pipeline("hybrid", pb.RETRIEVAL_HYBRID, False, about="BM25 + dense fused (gateway default), first-stage order"),
        Pipeline("hybrid-rrf", pb.RETRIEVAL_HYBRID, False, fusion=pb.FUSION_RRF, about="BM25 + dense, RRF, no rerank"),
        Pipeline("dense+rerank", pb.RETRIEVAL_DENSE, True, about="dense, candidate window reranked",
                 first_stage="dense"),
        Pipeline("hybrid+rerank", pb.RETRIEVAL_HYBRID, True, about="fused, candidate window reranked (default)",
                 first_stage="hybrid"),
        Pipeline("mrl64", pb.RETRIEVAL_DENSE, False, mrl_dim=64, about="dense, 64-d sweep refined at full dim"),
        Pipeline("mrl128", pb.RETRIEVAL_DENSE, False, mrl_dim=128, about="dense, 128-d sweep refined at full dim"),
        Pipeline("bulk", pb.RETRIEVAL_DENSE, False, bulk=True, about="BulkSearch: every doc above the threshold"),
    )
}
DEFAULT_PIPELINES = tuple(PIPELINES)
#: Other names accepted for a pipeline (`bm25` was the lexical pipeline's name before API 1.1).
ALIASES = {"bm25": "lexical"}


@dataclass
class EvalOptions:
    """How the runner queries the gateway."""

    k: int = 100  # hits asked of first-stage pipelines (recall@100 needs 100)
    window: int = 80  # rerank pipelines: candidate window, and k = window (all reranked candidates come back)
    rrf_k: int = 0  # 0 = the gateway's default
    threshold: float = 0.35  # bulk: cosine threshold; recall ~0.9 on SciFact train (docs/quality.md)
    bulk_max_results: int = 0  # bulk: 0 = the gateway's limit
    concurrency: int = 1  # queries in flight; 1 keeps per-query latency free of self-inflicted queueing
    timeout_s: float = 60.0  # deadline of every RPC
    ingest_batch: int = 64
    ingest_concurrency: int = 2


def document_text(doc: Document) -> str:
    """What the gateway indexes for a BEIR document (the same rule `winnow ingest` applies)."""
    return ingest_text(doc.title, doc.text)


def _struct(d: dict) -> Struct:
    st = Struct()
    st.update(d)
    return st


def _short(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


async def ingest(
    stub: pb_grpc.GatewayStub,
    dataset: BeirDataset,
    options: EvalOptions,
    progress: Callable[[int], None] | None = None,
) -> float:
    """Upsert the whole corpus in batches through the gateway; returns seconds taken. Retries overload briefly."""
    docs = [
        pb.Document(id=d.id, text=document_text(d), metadata=_struct({"title": d.title}))
        for d in dataset.corpus.values()
        if document_text(d)
    ]
    skipped = len(dataset.corpus) - len(docs)
    if skipped:
        log.warning("skipping %d documents with no title and no text", skipped)
    batches = [docs[i : i + options.ingest_batch] for i in range(0, len(docs), options.ingest_batch)]
    gate = asyncio.Semaphore(max(1, options.ingest_concurrency))

    async def send(batch: list[pb.Document]) -> None:
        async with gate:
            for attempt in range(5):
                try:
                    await stub.Upsert(pb.UpsertRequest(documents=batch), timeout=max(options.timeout_s, 120.0))
                    break
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or attempt == 4:
                        raise
                    await asyncio.sleep(0.2 * 2**attempt)  # admission control said "later"
        if progress is not None:
            progress(len(batch))

    start = time.perf_counter()
    await asyncio.gather(*(send(b) for b in batches))
    return time.perf_counter() - start


async def _search_one(stub, pipeline: Pipeline, query: str, options: EvalOptions) -> tuple[dict, dict, bool]:
    """(doc id → score in returned order, timings, reranked) for one query."""
    if pipeline.bulk:
        bulk = pb.BulkSearchRequest(query=query, threshold=options.threshold, max_results=options.bulk_max_results,
                                    mrl_dim=pipeline.mrl_dim)
        hits: dict[str, float] = {}
        timings: dict[str, float] = {}
        async for page in stub.BulkSearch(bulk, timeout=options.timeout_s):
            for h in page.hits:
                hits.setdefault(h.id, h.score)
            timings = dict(page.timings_ms)  # the last page's timings cover the whole request
        return hits, timings, False
    req = pb.SearchRequest(query=query, retrieval=pipeline.retrieval, rerank=pipeline.rerank, no_cache=True,
                           rrf_k=options.rrf_k, mrl_dim=pipeline.mrl_dim, fusion=pipeline.fusion,
                           rerank_depth=pipeline.rerank_depth)
    req.mode = pb.MODE_PRECISION
    if pipeline.rerank:
        req.k = req.candidate_window = options.window
    else:
        req.k = req.candidate_window = options.k
    resp = await stub.Search(req, timeout=options.timeout_s)
    # Keep the gateway's order exactly: scores are replaced by a strictly decreasing rank score.
    ranked = {h.id: float(len(resp.hits) - i) for i, h in enumerate(resp.hits)}
    return ranked, dict(resp.timings_ms), resp.reranked


async def run_pipeline(
    stub: pb_grpc.GatewayStub,
    dataset: BeirDataset,
    pipeline: Pipeline,
    options: EvalOptions,
    progress: Callable[[int], None] | None = None,
) -> PipelineResult:
    """Send every query of the dataset through one pipeline and score the results."""
    run: dict[str, dict[str, float]] = {}
    stages: dict[str, list[float]] = {}
    errors, reranked, first_error = 0, 0, ""
    gate = asyncio.Semaphore(max(1, options.concurrency))

    async def one(qid: str, text: str) -> None:
        nonlocal errors, reranked, first_error
        async with gate:
            start = time.perf_counter()
            try:
                hits, timings, was_reranked = await _search_one(stub, pipeline, text, options)
            except (grpc.aio.AioRpcError, asyncio.TimeoutError) as exc:
                errors += 1
                first_error = first_error or _short(exc)
                run[qid] = {}
                return
            finally:
                if progress is not None:
                    progress(1)
            stages.setdefault("client", []).append((time.perf_counter() - start) * 1000)
        run[qid] = hits
        reranked += was_reranked
        for stage, ms in timings.items():
            stages.setdefault(stage, []).append(ms)

    await asyncio.gather(*(one(qid, text) for qid, text in dataset.queries.items()))
    rows = per_query(run, dataset.qrels, KS)
    result = PipelineResult(
        name=pipeline.name, metrics=mean_metrics(rows), latency_ms=percentiles(stages), queries=len(rows),
        errors=errors, reranked=reranked, first_error=first_error, run=run, samples=stages,
    )
    if pipeline.bulk:
        result.bulk = bulk_summary(run, dataset, options.threshold)
    return result


async def cluster_info(stub: pb_grpc.GatewayStub, timeout_s: float = 10.0) -> dict:
    """The gateway's ClusterInfo as a plain dict (documents, models, shards); {} if the RPC fails."""
    try:
        info = await stub.ClusterInfo(pb.ClusterInfoRequest(), timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        log.warning("ClusterInfo failed: %s", _short(exc))
        return {}
    return {
        "documents": info.documents, "embedder_model": info.embedder_model, "embedder_device": info.embedder_device,
        "reranker_model": info.reranker_model, "reranker_scorer": info.reranker_scorer, "cache": info.cache,
        "shards": len(info.shards),
    }


def pipeline(name: str) -> Pipeline:
    """A pipeline by name: a known one, or a rerank pipeline with a cascade cut, `hybrid+rerank@30` (the reranker
    scores only the window's top 30); ValueError naming the valid choices."""
    base, _, depth = ALIASES.get(name, name).partition("@")
    if base not in PIPELINES or (depth and not (PIPELINES[base].rerank and depth.isdigit() and int(depth) > 0)):
        raise ValueError(f"unknown pipeline {name!r}; choose from {', '.join(PIPELINES)} (a rerank pipeline may "
                         "name a cascade cut: hybrid+rerank@30)")
    if not depth:
        return PIPELINES[base]
    return replace(PIPELINES[base], name=f"{base}@{int(depth)}", rerank_depth=int(depth),
                   about=f"{PIPELINES[base].about}; the reranker scores only the top {int(depth)}")


def select_pipelines(names: Iterable[str]) -> list[Pipeline]:
    """Pipelines by name, in the order given; ValueError naming the unknown ones and the valid choices."""
    out, unknown = [], []
    for n in names:
        try:
            out.append(pipeline(n))
        except ValueError:
            unknown.append(n)
    if unknown:
        raise ValueError(f"unknown pipeline(s) {unknown}; choose from {', '.join(PIPELINES)} (a rerank pipeline "
                         "may name a cascade cut: hybrid+rerank@30)")
    return out


async def evaluate_target(
    channel: grpc.aio.Channel,
    dataset: BeirDataset,
    pipelines: Sequence[Pipeline],
    options: EvalOptions,
    do_ingest: bool = True,
    progress_factory: Callable[[str, int], Callable[[int], None]] | None = None,
    on_result: Callable[[EvalReport, PipelineResult], None] | None = None,
) -> EvalReport:
    """Ingest (optionally) and evaluate every pipeline against a gateway reachable on `channel`.

    `on_result(report, result)` is called as each pipeline finishes, so long runs report as they go.
    """
    stub = pb_grpc.GatewayStub(channel)
    report = EvalReport(dataset=str(dataset.root), split=dataset.split, queries=len(dataset.queries),
                        documents=len(dataset.corpus), ingest_s=None)
    if do_ingest:
        bar = progress_factory("ingest", len(dataset.corpus)) if progress_factory else None
        report.ingest_s = round(await ingest(stub, dataset, options, bar), 1)
    report.cluster = await cluster_info(stub)
    for pipeline in pipelines:
        bar = progress_factory(pipeline.name, len(dataset.queries)) if progress_factory else None
        started = time.perf_counter()
        result = await run_pipeline(stub, dataset, pipeline, options, bar)
        result.elapsed_s = round(time.perf_counter() - started, 1)
        report.pipelines[pipeline.name] = result
        if on_result is not None:
            on_result(report, result)
    return report


__all__ = [
    "DEFAULT_PIPELINES", "REPORTED", "EvalOptions", "EvalReport", "PIPELINES", "Pipeline", "PipelineResult", "pipeline",
    "cluster_info", "document_text", "evaluate_target", "ingest", "run_pipeline", "select_pipelines",
]
