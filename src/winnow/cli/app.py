"""`winnow`: run the local cluster, search, ingest, evaluate and benchmark.

    winnow up [--detach]      start nats-server, embedder, reranker, shard replicas and gateway on loopback;
                              ingest the sample once
    winnow down | status      stop / inspect a cluster (status says which cluster it found)
    winnow search "text"      ranked table (or --json)
    winnow ingest FILE.jsonl  upsert a corpus (BEIR layout accepted) with a progress bar
    winnow delete ID ...      delete documents
    winnow feedback add|export  record judgments and clicks per query; export them as training pairs
    winnow eval --dataset DIR nDCG@10, recall, latency per pipeline (--report DIR: run files, summary, picture)
    winnow train reranker ... fine-tune a cross-encoder on judgments or on the corpus itself
    winnow reshard --shards M re-partition a detached cluster's log into M shards while it serves
    winnow bench models|index|gateway|replicas|peers|log
    winnow serve SERVICE ...  run one service in the foreground (containers); `winnow serve gateway --help`

Which cluster: --target, else WINNOW_TARGET, else the local cluster started from --data-dir (.winnow). The token
comes from WINNOW_TOKEN (never needed on the command line); TLS from WINNOW_TLS=1 / WINNOW_TLS_CA /
WINNOW_TLS_CERT / WINNOW_TLS_KEY or the --tls-* flags.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from winnow.cli.failures import CliError, Exit, UsageError, report
from winnow.cli.failures import __doc__ as EXIT_CODES

REPO_ROOT = Path(__file__).resolve().parents[3]
SAMPLE = REPO_ROOT / "data" / "scifact-sample.jsonl.gz"
DEFAULT_DATA_DIR = ".winnow"
SERVICES = ("embedder", "reranker", "index", "gateway")
PASSTHROUGH = ("eval", "train", "bench", "serve")
BENCHES = ("models", "index", "gateway", "replicas", "peers", "log")


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's layout and shows every flag's default."""


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line, exit 2, JSON with --json) instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _version() -> str:
    from winnow.common.buildinfo import VERSION, git_sha
    from winnow.services.gateway.server import API_VERSION

    return f"winnow {VERSION} (git {git_sha()}, gateway API {API_VERSION})"


# -- connection ---------------------------------------------------------------------------------------------------

def _client(args, timeout: float | None = None):
    """A WinnowClient for the cluster the flags / environment point at, and where that target came from."""
    from winnow.cli.target import find
    from winnow.client import WinnowClient
    from winnow.client.settings import resolve

    settings = resolve(token=args.token, tls=True if args.tls else None, tls_ca=args.tls_ca or None,
                       tls_cert=args.tls_cert or None, tls_key=args.tls_key or None)
    found = find(args.target, args.data_dir, settings)
    try:
        client = WinnowClient(found.target, settings=settings, timeout=timeout or args.timeout)
    except ValueError as exc:  # unreadable TLS files
        raise CliError(str(exc), Exit.INVALID_ARGUMENT) from None
    return client, found


def _emit(args, payload: Any) -> None:
    print(json.dumps(payload, indent=None if getattr(args, "compact", False) else 2))


# -- commands -----------------------------------------------------------------------------------------------------

def cmd_up(args) -> int:
    from winnow.client import WinnowClient
    from winnow.cluster.launcher import ClusterConfig, LocalCluster, read_state
    from winnow.ingest import count_lines, ingest, read_documents

    if read_state(Path(args.data_dir)):
        raise CliError(f"a cluster is already running from {args.data_dir} (winnow status / winnow down)")
    cfg = ClusterConfig(data_dir=Path(args.data_dir), shards=args.shards, replicas=args.replicas,
                        gateway_port=args.port, redis_url=args.redis_url, cache=args.cache, log_url=args.log_url)
    print(f"starting nats-server, {args.shards} shard(s) x {args.replicas} replica(s), embedder, reranker and "
          f"gateway (logs: {args.data_dir}/logs) ...", file=sys.stderr)
    cluster = LocalCluster(cfg).start()
    try:
        with WinnowClient(cluster.gateway, timeout=120) as client:
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
    if args.json:
        _emit(args, {"gateway": cluster.gateway, "data_dir": str(args.data_dir), "detached": args.detach})
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
    print(f"stopped: {', '.join(stopped)}" if stopped else f"no cluster running from {args.data_dir}",
          file=sys.stderr)
    if args.json:
        _emit(args, {"stopped": stopped})
    return 0


def cmd_status(args) -> int:
    from winnow.cluster.launcher import read_state

    client, found = _client(args, timeout=args.timeout)
    with client:
        if not client.healthy(timeout=min(5.0, args.timeout)):
            raise CliError(f"gateway {found.target} (from {found.source}) is not serving: not reachable, or its "
                           "health check says NOT_SERVING", Exit.UNAVAILABLE, target=found.target,
                           source=found.source)
        info = client.info()
    out: dict[str, Any] = {"gateway": found.target, "found_by": found.source, **info.to_json()}
    state = read_state(Path(args.data_dir)) if found.source.startswith("local") else None
    if state:
        out["pids"] = {n: s["pid"] for n, s in state["services"].items()}
    if args.json:
        _emit(args, out)
        return 0
    healthy = sum(s.healthy for s in info.shards)
    print(f"cluster: gateway {found.target} (found by {found.source}), winnow {info.version}, API {info.api_version}")
    print(f"  {info.documents} documents · cache {info.cache} · embedder {out['embedder']} · reranker "
          f"{out['reranker']}")
    print(f"  shards: {healthy}/{len(info.shards)} healthy")
    for s in info.shards:
        state_txt = f"{s.count} docs, generation {s.generation}, {s.index_factory}" if s.healthy else f"DOWN: {s.error}"
        print(f"    {s.address}: {state_txt}")
    return 0


def _filters(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--filter {item!r}: expected FIELD=VALUE, e.g. --filter year=2019")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        out[name] = parsed if isinstance(parsed, (str, int, float, bool)) else value
    return out


def cmd_search(args) -> int:
    filters = _filters(args.filter)
    vec: dict[str, Any] = {}
    if args.vector_file:
        from winnow.vectorfile import VectorFileError, read_query_vector

        try:
            vec = dict(vector=read_query_vector(args.vector_file), vector_model=args.vector_model)
        except VectorFileError as exc:
            raise CliError(str(exc), Exit.INVALID_ARGUMENT) from None
    client, _ = _client(args)
    with client:
        if args.bulk:
            hits, pages, coverage = [], 0, None
            for page in client.bulk_search(args.query, threshold=args.threshold, max_results=args.max_results,
                                           page_size=args.page_size, mrl_dim=args.mrl_dim, filters=filters, **vec):
                hits.extend(page.hits)
                pages += 1
                coverage = page.coverage
            if args.json:
                _emit(args, {"total": len(hits), "pages": pages, "hits": [h.to_json() for h in hits],
                             "coverage": coverage.__dict__ if coverage else None})
            else:
                cov = f"coverage {coverage.shards_answered}/{coverage.shards_asked}" if coverage else ""
                _print_table(hits, f"{len(hits)} documents with similarity >= {args.threshold} ({pages} pages, {cov})")
            return 0
        r = client.search(args.query, k=args.k, window=args.window, rerank=False if args.no_rerank else None,
                          retrieval=args.retrieval, fusion=args.fusion, mrl_dim=args.mrl_dim, filters=filters,
                          no_cache=args.no_cache, rerank_depth=args.rerank_depth, **vec)
    if args.json:
        _emit(args, r.to_json())
        return 0
    flags = [f"coverage {r.coverage.shards_answered}/{r.coverage.shards_asked}",
             "reranked" if r.reranked else f"NOT reranked ({r.rerank_skipped_reason or 'off'})"]
    if r.cache_hit:
        flags.append("cache hit")
    timings = ", ".join(f"{k} {v:.1f}" for k, v in r.timings_ms.items())
    _print_table(r.hits, f"{len(r.hits)} hits; {'; '.join(flags)}; ms: {timings}")
    return 0


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
    from winnow.ingest import CorpusError, count_lines, ingest, read_documents
    from winnow.vectorfile import VectorFileError, read_vectors

    try:
        total = count_lines(args.file)
    except OSError as exc:
        raise CorpusError(f"{args.file}: cannot open ({exc.strerror or exc})") from None
    docs = read_documents(args.file)
    if args.vector_file:  # one row per document, in file order
        try:
            vectors = read_vectors(args.vector_file)
        except VectorFileError as exc:
            raise CliError(str(exc), Exit.INVALID_ARGUMENT) from None
        if vectors.shape[0] != total:
            raise CorpusError(f"{args.vector_file}: {vectors.shape[0]} vectors for {total} documents")
        docs = ({**d, "vector": v} for d, v in zip(docs, vectors))
    client, found = _client(args)
    with client:
        n = ingest(client, docs, batch_size=args.batch_size, total=total, progress=not (args.quiet or args.json),
                   vector_model=args.vector_model)
    print(f"upserted {n} documents into {found.target}", file=sys.stderr)
    if args.json:
        _emit(args, {"upserted": n, "gateway": found.target})
    return 0


def cmd_reshard(args) -> int:
    from winnow.cluster.launcher import ClusterError, LocalCluster
    from winnow.cluster.reshard import reshard

    try:
        cluster = LocalCluster.attach(Path(args.data_dir))
    except ClusterError as exc:
        raise CliError(str(exc), Exit.UNAVAILABLE) from None
    print(f"resharding {cluster.layout} ({cluster.shards} shards) into {args.shards} shards; searches and "
          "writes go on ...", file=sys.stderr)
    layout = reshard(cluster, args.shards)
    print(f"now serving layout {layout} with {args.shards} shards", file=sys.stderr)
    if args.json:
        _emit(args, {"layout": layout, "shards": args.shards})
    return 0


def cmd_delete(args) -> int:
    client, _ = _client(args)
    with client:
        n = client.delete(args.ids).deleted
    print(f"deleted {n}", file=sys.stderr)
    if args.json:
        _emit(args, {"deleted": n})
    return 0


# -- parser -------------------------------------------------------------------------------------------------------

def _output_flags(p: argparse.ArgumentParser, top: bool = False) -> None:
    # On subcommands the defaults are SUPPRESS so `winnow --json status` and `winnow status --json` both work.
    default = False if top else argparse.SUPPRESS
    p.add_argument("--json", action="store_true", default=default,
                   help="print only JSON on stdout (errors too: {\"error\": {...}})")
    p.add_argument("--debug", action="store_true", default=default, help="show the traceback of a failure")


def _connection_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection (flags win over the environment)")
    g.add_argument("--target", default=None,
                   help="gateway host:port; default: WINNOW_TARGET, else the local cluster of --data-dir")
    g.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="where `winnow up` keeps the local cluster's state")
    g.add_argument("--token", default=None,
                   help="bearer token; prefer WINNOW_TOKEN (a command line is visible to other users in ps)")
    g.add_argument("--tls", action="store_true", help="TLS with the system's root certificates (WINNOW_TLS=1)")
    g.add_argument("--tls-ca", default="", help="CA certificate (PEM) of the gateway; implies TLS (WINNOW_TLS_CA)")
    g.add_argument("--tls-cert", default="", help="client certificate (PEM) for mutual TLS (WINNOW_TLS_CERT)")
    g.add_argument("--tls-key", default="", help="client key (PEM) for mutual TLS (WINNOW_TLS_KEY)")
    g.add_argument("--timeout", type=float, default=30.0, help="seconds per request (retries included)")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="winnow", description=__doc__, formatter_class=Formatter,
               epilog="exit codes:\n" + "\n".join(l for l in EXIT_CODES.splitlines() if l.startswith("|")))
    p.add_argument("--version", action="version", version=_version())
    _output_flags(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    def add(name: str, help_: str, connection: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_, formatter_class=Formatter)
        _output_flags(sp)
        if connection:
            _connection_flags(sp)
        return sp

    up = add("up", "start the local cluster (embedder, reranker, shards, gateway) on loopback", connection=False)
    up.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="data, logs and state of the local cluster")
    up.add_argument("--shards", type=int, default=2, help="index shards")
    up.add_argument("--replicas", type=int, default=1, help="replicas per shard, each following the shard's log")
    up.add_argument("--log-url", default="", help="use this NATS JetStream (nats://...) instead of starting one")
    up.add_argument("--port", type=int, default=50050, help="gateway port (0 = any free port)")
    up.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="result cache (used when reachable)")
    up.add_argument("--cache", default="auto", choices=["auto", "redis", "memory", "off"],
                    help="auto: Redis if reachable, else in-process")
    up.add_argument("--detach", action="store_true", help="start in the background and return")
    up.add_argument("--sample", default=None,
                    help="corpus ingested on first start (default: data/scifact-sample.jsonl.gz of this checkout)")
    up.add_argument("--no-sample", action="store_true", help="start empty")
    up.set_defaults(func=cmd_up)

    down = add("down", "stop a local cluster started from --data-dir", connection=False)
    down.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="data, logs and state of the local cluster")
    down.set_defaults(func=cmd_down)

    add("status", "which cluster was found, its health, documents, models and shards").set_defaults(func=cmd_status)

    se = add("search", "search and print a ranked table (precision mode), or --bulk")
    se.add_argument("query", help="the text to search for")
    se.add_argument("-k", type=int, default=10, help="results to return (precision mode)")
    se.add_argument("--window", type=int, default=0, help="first-stage candidates reranked (0 = the gateway's, 80)")
    se.add_argument("--no-rerank", action="store_true", help="first-stage order, no reranker")
    se.add_argument("--rerank-depth", type=int, default=0,
                    help="cascade: the reranker scores only the window's top N (0 = the reranker's setting)")
    se.add_argument("--retrieval", default="hybrid", type=lambda v: "lexical" if v == "bm25" else v,
                    choices=["hybrid", "dense", "lexical"], help="first stage: BM25 + dense fused, dense only, or "
                    "lexical (BM25) only; `bm25` is accepted for lexical")
    se.add_argument("--fusion", default="", choices=["", "convex", "rrf"],
                    help="hybrid fusion ('' = the gateway's default, convex)")
    se.add_argument("--mrl-dim", type=int, default=0, help="MRL coarse-sweep dimension (0 = full dimension only)")
    se.add_argument("--filter", action="append", metavar="FIELD=VALUE",
                    help="metadata equality filter, repeatable (VALUE parsed as JSON when it is a number/bool)")
    se.add_argument("--no-cache", action="store_true", help="bypass the result cache")
    se.add_argument("--vector-file", default=None,
                    help="your own query vector (.npy, JSON list or text): the embedder is skipped")
    se.add_argument("--vector-model", default="", help="the model that made --vector-file ('' = the collection's)")
    b = se.add_argument_group("bulk mode")
    b.add_argument("--bulk", action="store_true", help="every document with similarity >= --threshold, streamed")
    b.add_argument("--threshold", type=float, default=0.5, help="bulk: cosine similarity threshold in [-1, 1]")
    b.add_argument("--max-results", type=int, default=0, help="bulk: cap on hits (0 = the gateway's limit)")
    b.add_argument("--page-size", type=int, default=0, help="bulk: hits per streamed page (0 = the gateway's, 256)")
    se.set_defaults(func=cmd_search)

    ing = add("ingest", "upsert a JSON-lines corpus (BEIR layout accepted, .gz too)")
    ing.add_argument("file", help="corpus: {_id,title,text} (BEIR) or {id,text,metadata} per line")
    ing.add_argument("--batch-size", type=int, default=64, help="documents per upsert request")
    ing.add_argument("--quiet", action="store_true", help="no progress bar")
    ing.add_argument("--vector-file", default=None,
                     help="your own document vectors (.npy or JSON matrix), one row per document in file order")
    ing.add_argument("--vector-model", default="", help="the model that made the vectors ('' = the collection's)")
    ing.set_defaults(func=cmd_ingest)

    rs = add("reshard", "re-partition a running local cluster to --shards M (no re-embedding)", connection=False)
    rs.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="data, logs and state of the local cluster")
    rs.add_argument("--shards", type=int, required=True, help="the new number of shards")
    rs.set_defaults(func=cmd_reshard)

    de = add("delete", "delete documents by id")
    de.add_argument("ids", nargs="+", help="document ids")
    de.set_defaults(func=cmd_delete)

    from winnow.cli.feedback import add_commands as add_feedback_commands  # its own module: winnow/cli/feedback.py

    add_feedback_commands(sub)

    sv = sub.add_parser("serve", help="run one service in the foreground (`winnow serve SERVICE --help`: its flags)",
                        add_help=False)
    sv.add_argument("service", choices=SERVICES)
    sub.add_parser("eval", help="retrieval quality on a BEIR dataset (`winnow eval --help`)", add_help=False)
    sub.add_parser("train", help="train the second stage (`winnow train reranker --help`)", add_help=False)
    sub.add_parser("bench", help=f"benchmarks: {', '.join(BENCHES)} (`winnow bench WHAT --help`)", add_help=False)
    return p


# -- entry point --------------------------------------------------------------------------------------------------

def _split(argv: list[str]) -> tuple[list[str], str | None, list[str]]:
    """(global flags, the command, its arguments) without parsing the command's own flags."""
    for i, tok in enumerate(argv):
        if not tok.startswith("-"):
            return argv[:i], tok, argv[i + 1:]
    return argv, None, []


def _passthrough(command: str, rest: list[str]) -> int:
    import importlib

    if command in ("eval", "train"):
        return int(importlib.import_module(f"winnow.{command}.cli").main(rest) or 0)
    what = rest[0] if rest and not rest[0].startswith("-") else None
    choices = BENCHES if command == "bench" else SERVICES
    if what is None:
        if rest and rest[0] in ("-h", "--help"):
            print(f"usage: winnow {command} {{{','.join(choices)}}} [--help | FLAGS]\n\n"
                  + ("benchmarks (see docs/): " if command == "bench" else
                     "run one service in the foreground; every flag is also an env var (see --help of each)")
                  + "\n", file=sys.stdout)
            return 0
        raise UsageError(f"`winnow {command}` needs one of: {', '.join(choices)}")
    if what not in choices:
        raise UsageError(f"`winnow {command} {what}`: choose from {', '.join(choices)}")
    module = f"winnow.bench.{what}" if command == "bench" else f"winnow.services.{what}.__main__"
    mod = importlib.import_module(module)
    if command == "serve":
        sys.argv = [f"winnow serve {what}", *rest[1:]]  # so the service's --help names itself
    return int(mod.main(rest[1:]) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    head, command, rest = _split(argv)
    # Errors the wrapper itself raises (a passed-through command reports its own): --json/--debug anywhere count.
    json_mode, debug = "--json" in argv, "--debug" in argv
    try:
        if command in PASSTHROUGH:
            build_parser().parse_args([*head, "status"])  # global flags: --version, --help, typos
            return _passthrough(command, rest)
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except SystemExit as exc:  # --help / --version, or a passed-through service's own exit
        return int(exc.code or 0) if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # noqa: BLE001 - the CLI's one place that turns failures into exit codes
        prog = f"winnow {command}" if command else "winnow"
        return report(exc, prog=prog, json_mode=json_mode, debug=debug)
