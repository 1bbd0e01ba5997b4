"""`winnow eval`: measure retrieval quality and latency of every pipeline on a BEIR collection.

    winnow eval --dataset ../shared/datasets/scifact            # private local cluster, all pipelines
    winnow eval --dataset DIR --target 127.0.0.1:50050 --no-ingest --pipelines hybrid,hybrid+rerank
    winnow eval --dataset DIR --queries 50 --json
    winnow eval --dataset DIR --queries 100 --report out/   # + TREC run files, summary.json, report.png/.html

Without --target a private cluster (the project's real services, as local processes on loopback, data in a
temporary directory) is started, the corpus is ingested through the gateway, and the cluster is stopped at the
end. Progress goes to stderr; stdout carries only the table (or, with --json, one JSON object keyed by pipeline).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from winnow.eval.beir import DatasetError, load_beir
from winnow.models.loading import ModelLoadError
from winnow.eval.runner import (DEFAULT_PIPELINES, PIPELINES, EvalOptions, EvalReport, evaluate_target, pipeline,
                                select_pipelines)

log = logging.getLogger(__name__)

STAGES = ("embed", "search", "merge", "fusion", "rerank", "ltr", "total", "client")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `winnow eval`."""
    p = argparse.ArgumentParser(prog="winnow eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, type=Path, help="BEIR-layout directory (corpus, queries, qrels/).")
    p.add_argument("--split", default="test", help="qrels split to evaluate (default: test).")
    p.add_argument("--target", default="", help="HOST:PORT of a running gateway; default: start a private cluster.")
    p.add_argument("--no-ingest", action="store_true", help="with --target: the corpus is already indexed.")
    p.add_argument("--queries", type=int, default=None, help="evaluate a deterministic sample of N queries.")
    p.add_argument("--seed", type=int, default=0, help="seed of the --queries sample (default 0).")
    p.add_argument("--pipelines", default=",".join(DEFAULT_PIPELINES),
                   help=f"comma-separated, from: {', '.join(PIPELINES)} (default: all; `bm25` = lexical); a "
                   "rerank pipeline may name a cascade cut, e.g. hybrid+rerank@30 (the reranker scores the top 30).")
    p.add_argument("--json", action="store_true", help="print one JSON object keyed by pipeline instead of a table.")
    p.add_argument("--json-out", type=Path, default=None,
                   help="also write the JSON object (plus run details under \"_run\") to this file.")
    p.add_argument("--report", type=Path, default=None, metavar="DIR",
                   help="write per-query TREC run files, summary.json, report.png and report.html into DIR.")
    p.add_argument("--debug", action="store_true", help="show the traceback of a failure.")
    d = EvalOptions()
    p.add_argument("--k", type=int, default=d.k, help=f"hits asked of first-stage pipelines (default {d.k}).")
    p.add_argument("--window", type=int, default=d.window,
                   help=f"candidate window of rerank pipelines; all reranked candidates are returned (default {d.window}).")
    p.add_argument("--rrf-k", type=int, default=d.rrf_k, help="RRF constant sent to the gateway (0 = its default).")
    p.add_argument("--threshold", type=float, default=d.threshold,
                   help=f"bulk pipeline: cosine similarity threshold (default {d.threshold}).")
    p.add_argument("--concurrency", type=int, default=d.concurrency,
                   help=f"queries in flight (default {d.concurrency}: latency without self-inflicted queueing).")
    p.add_argument("--timeout", type=float, default=d.timeout_s, help=f"deadline of each RPC, s (default {d.timeout_s:g}).")
    p.add_argument("--connect-timeout", type=float, default=30.0,
                   help="seconds to wait for the gateway channel to be ready (default 30).")
    p.add_argument("--shards", type=int, default=2, help="private cluster: number of index shards (default 2).")
    p.add_argument("--reranker-model", type=Path, default=None,
                   help="private cluster: serve this cross-encoder directory (e.g. from `winnow train reranker`) "
                   "with scorer=cross-encoder; its fusion with the first stage comes from its winnow_reranker.json.")
    p.add_argument("--reranker-arg", action="append", default=[], metavar="FLAG=VALUE",
                   help="private cluster: an extra reranker flag, e.g. --reranker-arg max-length=192 (repeatable).")
    p.add_argument("--ltr-model", type=Path, default=None,
                   help="private cluster: the gateway serves this `winnow train ltr` file as its final stage "
                   "(rerank pipelines; use --window at the model's training depth).")
    p.add_argument("--data-dir", type=Path, default=None, help="private cluster: data directory (default: a temp dir).")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr.")
    return p


def reranker_args(model: Path | None, extra: list[str]) -> list[str]:
    """Reranker service flags for --reranker-model / --reranker-arg (ValueError on a malformed FLAG=VALUE)."""
    out: list[str] = []
    if model is not None:
        from winnow.models.trained import check_cross_encoder_dir

        out += ["--scorer", "cross-encoder", "--model-dir", str(check_cross_encoder_dir(model).resolve())]
    for item in extra:
        flag, sep, value = item.partition("=")
        if not sep or not flag.strip():
            raise ValueError(f"--reranker-arg {item!r}: expected FLAG=VALUE, e.g. max-length=192")
        out += [f"--{flag.strip().lstrip('-')}", value]
    return out


def ltr_args(model: Path | None) -> list[str]:
    """Gateway flags for --ltr-model, the file checked first (LtrModelError, a ValueError, when it cannot serve)."""
    if model is None:
        return []
    from winnow.models.ltr import load

    load(model)
    return ["--ltr-model", str(model.resolve())]


@contextlib.contextmanager
def start_private_cluster(data_dir: Path | None, shards: int, reranker: list[str] | None = None,
                          gateway: list[str] | None = None) -> Iterator[str]:
    """Start the project's local cluster on loopback (free ports, no Redis) and yield the gateway address.

    The data directory is temporary unless given; every process is stopped (drained) on exit.
    """
    from winnow.cluster.launcher import ClusterConfig, LocalCluster

    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="winnow-eval-")))
        config = ClusterConfig(data_dir=data_dir, shards=shards, gateway_port=0, cache="memory",
                               service_args={"reranker": list(reranker or []), "gateway": list(gateway or [])})
        started = time.perf_counter()
        cluster = stack.enter_context(LocalCluster(config))
        print(f"private cluster up in {time.perf_counter() - started:.0f}s: gateway {cluster.gateway}, "
              f"{shards} shards, data in {data_dir}", file=sys.stderr)
        yield cluster.gateway


def _progress_factory(enabled: bool) -> Callable[[str, int], Callable[[int], None]] | None:
    if not enabled:
        return None
    from tqdm import tqdm

    def make(name: str, total: int) -> Callable[[int], None]:
        bar = tqdm(total=total, desc=f"{name:>14s}", unit="doc" if name == "ingest" else "q", file=sys.stderr,
                   leave=True, dynamic_ncols=True)

        def advance(n: int) -> None:
            bar.update(n)
            if bar.n >= total:
                bar.close()

        return advance

    return make


def _lat(res, stage: str) -> str:
    v = res.latency_ms.get(stage)
    return f"{v['p50']:.0f}/{v['p99']:.0f}" if v else "-"


def _gain(report: EvalReport, name: str) -> str:
    """nDCG@10 of a rerank pipeline minus its first stage's, when both ran; '-' otherwise."""
    base = report.pipelines.get(pipeline(name).first_stage)
    if base is None:
        return "-"
    return f"{report.pipelines[name].metrics.get('ndcg@10', 0.0) - base.metrics.get('ndcg@10', 0.0):+.4f}"


def format_table(report: EvalReport) -> str:
    """The human table: quality columns, then per-stage latency p50/p99 in ms, then the bulk line."""
    lines = [
        f"dataset {report.dataset} · split {report.split} · {report.queries} queries · {report.documents} documents"
        + (f" · ingest {report.ingest_s:.0f}s" if report.ingest_s is not None else ""),
    ]
    if report.cluster:
        c = report.cluster
        lines.append(f"embedder {c.get('embedder_model')} ({c.get('embedder_device')}) · reranker "
                     f"{c.get('reranker_model')} / {c.get('reranker_scorer')} · {c.get('shards')} shards · "
                     f"{c.get('documents')} docs indexed")
    head = ["pipeline", "nDCG@10", "gain", "MRR@10", "R@10", "R@80", "R@100", "err",
            *(f"{s} p50/p99" for s in STAGES)]
    rows = []
    for name, res in report.pipelines.items():
        m = res.metrics
        rows.append([name, f"{m.get('ndcg@10', 0.0):.4f}", _gain(report, name),
                     *(f"{m.get(k, 0.0):.4f}" for k in ("mrr@10", "recall@10", "recall@80", "recall@100")),
                     str(res.errors), *(_lat(res, s) for s in STAGES)])
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    lines += [fmt(head), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]
    for name, res in report.pipelines.items():
        if res.bulk:
            b = res.bulk
            lines.append(f"{name}: threshold {b['threshold']:g} → recall {b['recall']:.4f}, precision "
                         f"{b['precision']:.4f}, returned per query mean {b['returned_mean']:.1f} / median "
                         f"{b['returned_p50']:.0f} / max {b['returned_max']}")
        if res.errors:
            lines.append(f"{name}: {res.errors} queries failed (scored 0), first: {res.first_error}")
        rerank_asked = pipeline(name).rerank
        if rerank_asked and res.reranked < res.queries - res.errors:
            lines.append(f"{name}: only {res.reranked} of {res.queries} responses were reranked")
    lines.append("gain: nDCG@10 over the first stage it reranks (that pipeline in the same run); "
                 "@N: the reranker scored only the window's top N")
    lines.append("latency in ms from the responses' timings_ms; client = wall time seen by the eval client")
    return "\n".join(lines)


def _run_details(report: EvalReport, argv: list[str], started: float) -> dict:
    return {"dataset": report.dataset, "split": report.split, "queries": report.queries,
            "documents": report.documents, "ingest_s": report.ingest_s, "cluster": report.cluster,
            "elapsed_s": round(time.perf_counter() - started, 1), "argv": argv}


def _reporter(args: argparse.Namespace, argv: list[str], started: float):
    """Per-pipeline callback: a summary line on stderr, and the --json-out file rewritten so far."""

    def on_result(report: EvalReport, res) -> None:
        m = res.metrics
        print(f"{res.name}: nDCG@10 {m.get('ndcg@10', 0):.4f} MRR@10 {m.get('mrr@10', 0):.4f} "
              f"R@80 {m.get('recall@80', 0):.4f} R@100 {m.get('recall@100', 0):.4f} · {res.queries} queries, "
              f"{res.errors} errors, {res.elapsed_s:.0f}s", file=sys.stderr, flush=True)
        if args.json_out is not None:
            args.json_out.write_text(json.dumps({**report.to_json(), "_run": _run_details(report, argv, started)},
                                                indent=2))

    return on_result


async def _evaluate(target: str, dataset, args: argparse.Namespace, options: EvalOptions,
                    on_result=None) -> EvalReport:
    from winnow.rpc.channels import make_channel

    pipelines = select_pipelines(p.strip() for p in args.pipelines.split(",") if p.strip())
    channel = make_channel(target)
    try:
        await asyncio.wait_for(channel.channel_ready(), timeout=args.connect_timeout)
        return await evaluate_target(channel, dataset, pipelines, options, do_ingest=not args.no_ingest,
                                     progress_factory=_progress_factory(not args.no_progress), on_result=on_result)
    finally:
        await channel.close()


def main(argv: list[str]) -> int:
    """Entry point of `winnow eval`; returns the exit code of `winnow.cli.failures` (0 ok, 2 usage, 3 bad
    dataset, 4 gateway unavailable, 1 run failed)."""
    from winnow.cli.failures import CliError, Exit, UsageError, report as report_failure

    json_mode, debug = "--json" in argv, "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, already printed on stderr)
        if exc.code and json_mode:
            print(json.dumps({"error": {"kind": "usage", "message": "bad arguments (see stderr)", "exit_code": 2}}))
        return int(exc.code or 0)
    options = EvalOptions(k=args.k, window=args.window, rrf_k=args.rrf_k, threshold=args.threshold,
                          concurrency=args.concurrency, timeout_s=args.timeout)
    started = time.perf_counter()
    try:
        try:
            select_pipelines(p.strip() for p in args.pipelines.split(",") if p.strip())
            if args.no_ingest and not args.target:
                raise ValueError("--no-ingest needs --target (a private cluster starts empty)")
            if (args.reranker_model or args.reranker_arg or args.ltr_model) and args.target:
                raise ValueError("--reranker-model/--reranker-arg/--ltr-model configure the private cluster; "
                                 "not with --target")
            service_args = reranker_args(args.reranker_model, args.reranker_arg)
            gateway_args = ltr_args(args.ltr_model)
        except (ValueError, ModelLoadError) as exc:  # (LtrModelError is a ValueError)  # a flag naming a bad value or a missing model directory
            raise UsageError(str(exc)) from None
        dataset = load_beir(args.dataset, args.split).sample(args.queries, args.seed)
        try:
            if args.target:
                report = asyncio.run(_evaluate(args.target, dataset, args, options, _reporter(args, argv, started)))
            else:
                with start_private_cluster(args.data_dir, args.shards, service_args, gateway_args) as gateway:
                    report = asyncio.run(_evaluate(gateway, dataset, args, options, _reporter(args, argv, started)))
        except (TimeoutError, asyncio.TimeoutError):
            raise CliError(f"gateway {args.target or '(private)'} not reachable within {args.connect_timeout:g}s",
                           Exit.UNAVAILABLE) from None
    except BaseException as exc:  # noqa: BLE001 - one clean line and the exit code of its kind
        return report_failure(exc, prog="winnow eval", json_mode=json_mode, debug=debug)
    print(json.dumps(report.to_json(), indent=2) if args.json else format_table(report))
    details = _run_details(report, argv, started)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps({**report.to_json(), "_run": details}, indent=2))
    if args.report is not None:
        from winnow.eval import report as eval_report

        eval_report.write(report, dataset, args.report, details)
        print(f"report: {args.report}/report.html (picture {args.report}/report.png, runs in {args.report}/runs/)",
              file=sys.stderr)
    print(f"eval finished in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
