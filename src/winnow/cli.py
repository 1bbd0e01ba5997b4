"""`winnow`: run the local cluster, search, ingest, evaluate and benchmark.

    winnow up [--detach]      start nats-server, embedder, reranker, shard replicas and gateway on loopback;
                              ingest the sample once
    winnow down | status      stop / inspect a detached cluster
    winnow reshard --shards M re-partition a detached cluster's log into M shards while it serves
    winnow search "text"      ranked table (or --json)
    winnow ingest FILE.jsonl  upsert a corpus (BEIR layout accepted) with a progress bar
    winnow eval --dataset DIR nDCG@10, recall, latency per pipeline
    winnow train reranker ... fine-tune a cross-encoder on judgments or on the corpus itself
    winnow bench models|index|gateway|replicas|peers|log
    winnow serve SERVICE ...  run one service in the foreground (containers)
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "data" / "scifact-sample.jsonl.gz"
DEFAULT_DATA_DIR = Path(".winnow")
DEFAULT_TARGET = "127.0.0.1:50050"


def _target(args) -> str:
    if getattr(args, "target", None):
        return args.target
    from winnow.cluster.launcher import read_state

    state = read_state(Path(args.data_dir))
    return state["gateway"] if state else DEFAULT_TARGET


def cmd_up(args) -> int:
    from winnow.client import WinnowClient
    from winnow.cluster.launcher import ClusterConfig, LocalCluster, read_state
    from winnow.ingest import count_lines, ingest, read_documents

    if read_state(Path(args.data_dir)):
        print(f"a cluster is already running from {args.data_dir} (winnow status / winnow down)", file=sys.stderr)
        return 1
    cfg = ClusterConfig(data_dir=Path(args.data_dir), shards=args.shards, replicas=args.replicas,
                        gateway_port=args.port, redis_url=args.redis_url, cache=args.cache, log_url=args.log_url)
    print(f"starting nats-server, {args.shards} shard(s) x {args.replicas} replica(s), embedder, reranker and "
          f"gateway (logs: {args.data_dir}/logs) ...", file=sys.stderr)
    cluster = LocalCluster(cfg).start()
    try:
        with WinnowClient(cluster.gateway) as client:
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
    print(f"stopped: {', '.join(stopped)}" if stopped else "no cluster running", file=sys.stderr)
    return 0


def cmd_status(args) -> int:
    from winnow.client import WinnowClient
    from winnow.cluster.launcher import read_state

    state = read_state(Path(args.data_dir))
    target = _target(args)
    with WinnowClient(target, timeout=5, token=args.token) as client:
        if not client.healthy():
            print(f"gateway {target}: not serving", file=sys.stderr)
            return 1
        info = client.info()
    out = {"gateway": target, "documents": info.documents, "cache": info.cache,
           "embedder": f"{info.embedder_model} ({info.embedder_device})",
           "reranker": f"{info.reranker_model} / {info.reranker_scorer} ({info.reranker_device})",
           "layout": info.layout,
           "shards": [{"address": s.address, "healthy": s.healthy, "count": s.count, "generation": s.generation,
                       "index": s.index_factory, "error": s.error,
                       "replicas": [{"address": r.address, "healthy": r.healthy, "count": r.count,
                                     "applied_seq": r.applied_seq, "error": r.error} for r in s.replicas]}
                      for s in info.shards]}
    if state:
        out["pids"] = {n: s["pid"] for n, s in state["services"].items()}
    print(json.dumps(out, indent=2))
    return 0


def cmd_search(args) -> int:
    from winnow.client import WinnowClient

    filters = {}
    for f in args.filter or []:
        field, _, value = f.partition("=")
        filters[field] = json.loads(value) if value[:1] in "0123456789-tf[{\"" and _is_json(value) else value
    opts = dict(k=args.k, window=args.window, rerank=False if args.no_rerank else None, retrieval=args.retrieval,
                mrl_dim=args.mrl_dim, filters=filters, no_cache=args.no_cache, fusion=args.fusion)
    if args.vector_file:
        from winnow.vectorfile import VectorFileError, read_query_vector

        try:
            opts.update(vector=read_query_vector(args.vector_file), vector_model=args.vector_model)
        except VectorFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    with WinnowClient(_target(args), timeout=args.timeout, token=args.token) as client:
        if args.bulk:
            hits, pages = [], 0
            for page in client.bulk_search(args.query, threshold=args.threshold, max_results=args.max_results,
                                           **{k: v for k, v in opts.items()
                                              if k in ("retrieval", "mrl_dim", "filters", "vector", "vector_model")}):
                hits.extend(page.hits)
                pages += 1
                coverage = page.coverage
            if args.json:
                print(json.dumps({"total": len(hits), "pages": pages, "hits": [_hit_dict(h) for h in hits]}))
            else:
                _print_table(hits, f"{len(hits)} documents with similarity >= {args.threshold} "
                             f"({pages} pages, coverage {coverage.shards_answered}/{coverage.shards_asked})")
            return 0
        resp = client.search(args.query, **opts)
    if args.json:
        from google.protobuf.json_format import MessageToDict

        print(json.dumps(MessageToDict(resp, preserving_proto_field_name=True)))
        return 0
    flags = [f"coverage {resp.coverage.shards_answered}/{resp.coverage.shards_asked}",
             "reranked" if resp.reranked else f"NOT reranked ({resp.rerank_skipped_reason or 'off'})"]
    if resp.cache_hit:
        flags.append("cache hit")
    timings = ", ".join(f"{k} {v:.1f}" for k, v in resp.timings_ms.items())
    _print_table(resp.hits, f"{len(resp.hits)} hits; {'; '.join(flags)}; ms: {timings}")
    return 0


def _is_json(s: str) -> bool:
    try:
        json.loads(s)
        return True
    except ValueError:
        return False


def _hit_dict(h) -> dict:
    return {"id": h.id, "score": h.score, "text": h.text, "metadata": json.loads(h.metadata_json or "{}")}


def _print_table(hits, header: str) -> None:
    width = max(100, shutil.get_terminal_size((120, 24)).columns)
    print(header)
    print(f"{'#':>3}  {'id':<12} {'score':>8} {'1st':>4}  text")
    for i, h in enumerate(hits, 1):
        text = " ".join(h.text.split())
        room = width - 33
        text = text if len(text) <= room else text[: room - 1] + "…"
        print(f"{i:>3}  {h.id[:12]:<12} {h.score:>8.4f} {h.first_stage_rank or '':>4}  {text}")


def cmd_ingest(args) -> int:
    from winnow.client import WinnowClient
    from winnow.ingest import CorpusError, count_lines, ingest, read_documents

    from winnow.vectorfile import VectorFileError, read_vectors

    try:
        total = count_lines(args.file)
        docs = read_documents(args.file)
        if args.vector_file:  # one row per document, in file order
            vectors = read_vectors(args.vector_file)
            if vectors.shape[0] != total:
                raise CorpusError(f"{args.vector_file}: {vectors.shape[0]} vectors for {total} documents")
            docs = ({**d, "vector": v} for d, v in zip(docs, vectors))
        with WinnowClient(_target(args), token=args.token) as client:
            n = ingest(client, docs, batch_size=args.batch_size, total=total, progress=not args.quiet,
                       vector_model=args.vector_model)
    except (CorpusError, VectorFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"upserted {n} documents", file=sys.stderr)
    return 0


def cmd_delete(args) -> int:
    from winnow.client import WinnowClient

    with WinnowClient(_target(args), token=args.token) as client:
        print(f"deleted {client.delete(args.ids).deleted}", file=sys.stderr)
    return 0


def cmd_reshard(args) -> int:
    from winnow.cluster.launcher import ClusterError, LocalCluster
    from winnow.cluster.reshard import reshard

    try:
        cluster = LocalCluster.attach(Path(args.data_dir))
        print(f"resharding {cluster.layout} ({cluster.shards} shards) into {args.shards} shards; searches and "
              "writes go on ...", file=sys.stderr)
        layout = reshard(cluster, args.shards)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"now serving layout {layout} with {args.shards} shards", file=sys.stderr)
    return 0


def cmd_serve(args, rest: list[str]) -> int:
    import importlib

    mod = importlib.import_module(f"winnow.services.{args.service}.__main__")
    return int(mod.main(rest) or 0)


def _delegate(module: str, rest: list[str]) -> int:
    import importlib

    return int(importlib.import_module(module).main(rest) or 0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="winnow", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, target=True):
        sp.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="local cluster state (default .winnow)")
        if target:
            sp.add_argument("--target", help="gateway host:port (default: the local cluster's)")
            sp.add_argument("--token", default="", help="bearer token, if the gateway sets auth_token")

    up = sub.add_parser("up", help="start the local cluster")
    common(up, target=False)
    up.add_argument("--shards", type=int, default=2)
    up.add_argument("--replicas", type=int, default=1, help="replicas per shard, each following the shard's log")
    up.add_argument("--log-url", default="", help="use this NATS JetStream (nats://...) instead of starting one")
    up.add_argument("--port", type=int, default=50050, help="gateway port (0 = any free port)")
    up.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    up.add_argument("--cache", default="auto", choices=["auto", "redis", "memory", "off"])
    up.add_argument("--detach", action="store_true", help="start in the background and return")
    up.add_argument("--sample", help="corpus to ingest on first start (default: data/scifact-sample.jsonl.gz)")
    up.add_argument("--no-sample", action="store_true", help="start empty")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop a detached local cluster")
    common(down, target=False)
    down.set_defaults(func=cmd_down)

    st = sub.add_parser("status", help="health, documents and shards of a cluster")
    common(st)
    st.set_defaults(func=cmd_status)

    se = sub.add_parser("search", help="search and print a ranked table")
    common(se)
    se.add_argument("query")
    se.add_argument("-k", type=int, default=10)
    se.add_argument("--window", type=int, default=0, help="first-stage candidates to rerank (default 80)")
    se.add_argument("--no-rerank", action="store_true")
    se.add_argument("--retrieval", default="hybrid", choices=["hybrid", "dense", "lexical"])
    se.add_argument("--fusion", default="", choices=["", "convex", "rrf"], help="hybrid fusion (default: gateway's)")
    se.add_argument("--mrl-dim", type=int, default=0)
    se.add_argument("--filter", action="append", metavar="FIELD=VALUE", help="metadata equality filter")
    se.add_argument("--bulk", action="store_true", help="bulk mode: everything above --threshold, streamed")
    se.add_argument("--threshold", type=float, default=0.5)
    se.add_argument("--max-results", type=int, default=0)
    se.add_argument("--no-cache", action="store_true")
    se.add_argument("--timeout", type=float, default=30.0)
    se.add_argument("--json", action="store_true")
    se.add_argument("--vector-file", help="your own query vector (.npy, JSON list or text): the embedder is skipped")
    se.add_argument("--vector-model", default="", help="the model that made --vector-file ('' = the collection's)")
    se.set_defaults(func=cmd_search)

    ing = sub.add_parser("ingest", help="upsert a JSON-lines corpus (BEIR layout accepted, .gz too)")
    common(ing)
    ing.add_argument("file")
    ing.add_argument("--batch-size", type=int, default=64)
    ing.add_argument("--quiet", action="store_true")
    ing.add_argument("--vector-file", help="your own document vectors (.npy or JSON matrix), one row per document "
                     "in file order: the embedder is skipped (documents may also carry a `vector` field)")
    ing.add_argument("--vector-model", default="", help="the model that made the vectors ('' = the collection's)")
    ing.set_defaults(func=cmd_ingest)

    de = sub.add_parser("delete", help="delete documents by id")
    common(de)
    de.add_argument("ids", nargs="+")
    de.set_defaults(func=cmd_delete)

    rs = sub.add_parser("reshard", help="re-partition a running local cluster to --shards M (no re-embedding)")
    common(rs, target=False)
    rs.add_argument("--shards", type=int, required=True)
    rs.set_defaults(func=cmd_reshard)

    sv = sub.add_parser("serve", help="run one service in the foreground (flags pass through)")
    sv.add_argument("service", choices=["embedder", "reranker", "index", "gateway"])
    sv.set_defaults(func=None, passthrough="serve")

    ev = sub.add_parser("eval", help="retrieval quality on a BEIR dataset (see winnow eval --help)", add_help=False)
    ev.set_defaults(func=None, passthrough="winnow.eval.cli")

    tr = sub.add_parser("train", help="train the second stage (see winnow train reranker --help)", add_help=False)
    tr.set_defaults(func=None, passthrough="winnow.train.cli")

    be = sub.add_parser("bench", help="benchmarks: models, index, gateway, replicas, peers, log")
    be.add_argument("what", choices=["models", "index", "gateway", "replicas", "peers", "log"])
    be.set_defaults(func=None, passthrough="bench")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    passthrough = getattr(args, "passthrough", None)
    if passthrough == "winnow.eval.cli":
        return _delegate("winnow.eval.cli", argv[argv.index("eval") + 1:])
    if passthrough == "winnow.train.cli":
        return _delegate("winnow.train.cli", argv[argv.index("train") + 1:])
    if passthrough == "bench":
        return _delegate(f"winnow.bench.{args.what}", argv[argv.index(args.what) + 1:])
    if passthrough == "serve":
        return cmd_serve(args, argv[argv.index(args.service) + 1:])
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
