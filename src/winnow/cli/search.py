"""`winnow search`: precision mode as a ranked table (or JSON), or every match above a threshold with --bulk."""

from __future__ import annotations

import json
import shutil
from typing import Any

from winnow.cli.common import connect, emit
from winnow.cli.failures import CliError, Exit, UsageError


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
    client, _ = connect(args)
    with client:
        if args.bulk:
            hits, pages, coverage = [], 0, None
            for page in client.bulk_search(args.query, threshold=args.threshold, max_results=args.max_results,
                                           page_size=args.page_size, mrl_dim=args.mrl_dim, filters=filters, **vec):
                hits.extend(page.hits)
                pages += 1
                coverage = page.coverage
            if args.json:
                emit(args, {"total": len(hits), "pages": pages, "hits": [h.to_json() for h in hits],
                            "coverage": coverage.__dict__ if coverage else None})
            else:
                cov = f"coverage {coverage.shards_answered}/{coverage.shards_asked}" if coverage else ""
                _print_table(hits, f"{len(hits)} documents with similarity >= {args.threshold} ({pages} pages, {cov})")
            return 0
        r = client.search(args.query, k=args.k, window=args.window, rerank=False if args.no_rerank else None,
                          retrieval=args.retrieval, fusion=args.fusion, mrl_dim=args.mrl_dim, filters=filters,
                          no_cache=args.no_cache, rerank_depth=args.rerank_depth, **vec)
    if args.json:
        emit(args, r.to_json())
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


def add_search(add) -> None:
    """`winnow search` under `winnow.cli.app.build_parser`'s `add`."""
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
