"""`winnow feedback add | export`: record users' judgments and clicks per query, and export them as the judgments
file `winnow train reranker --judgments FILE` reads.

    winnow feedback add --query-id Q1 --query "vitamin d and fractures" D1=2 D7=0     graded judgments
    winnow feedback add --query-id Q1 --query "vitamin d and fractures" --click D3    a click (relevance 1)
    winnow feedback export --out feedback.jsonl                                         one line per (query, doc)

An explicit judgment of a (query, document) overrides its clicks, whatever the order they came in; a pair with
clicks only takes the latest click's grade (`winnow.client.feedback.training_pairs`). `--raw` exports every
record instead (kind, time and log position included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from winnow.cli.common import Formatter, Parser, connect, connection_flags, emit, output_flags
from winnow.cli.failures import UsageError


def _judgment(item: str, click: bool):
    """DOC_ID or DOC_ID=REL: a judgment of relevance REL (1 when left out), or a click."""
    from winnow.client.feedback import CLICK, JUDGMENT, Judgment

    doc_id, sep, grade = item.rpartition("=") if "=" in item else (item, "", "")
    if not doc_id:
        raise UsageError(f"{item!r}: expected DOC_ID or DOC_ID=RELEVANCE, e.g. D12=2")
    relevance = None if click else 1
    if sep:
        try:
            relevance = int(grade)
        except ValueError:
            raise UsageError(f"{item!r}: the relevance after '=' must be an integer (0 = not relevant)") from None
    return Judgment(doc_id, relevance, CLICK if click else JUDGMENT)


def cmd_add(args) -> int:
    judgments = [_judgment(item, args.click) for item in args.judgments]
    client, found = connect(args)
    with client:
        result = client.feedback(args.query_id, args.query, judgments)
    what = "clicks" if args.click else "judgments"
    print(f"recorded {result.recorded} {what} for query {args.query_id!r} in {found.target}", file=sys.stderr)
    if args.json:
        emit(args, {"recorded": result.recorded, "request_ids": list(result.request_ids)})
    return 0


def _write_lines(out: str, rows: list[dict]) -> None:
    """JSON lines to stdout ('-') or to `out`, replaced whole (a failed export leaves the old file)."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if out == "-":
        sys.stdout.write(text)
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_export(args) -> int:
    from winnow.client.feedback import JUDGMENT, training_pairs

    client, found = connect(args)
    with client:
        records = list(client.export_feedback())
    rows = [r.to_json() for r in records] if args.raw else training_pairs(records)
    _write_lines(args.out, rows)
    judged = sum(r.kind == JUDGMENT for r in records)
    where = "stdout" if args.out == "-" else args.out
    kind = "records" if args.raw else "training pairs"
    print(f"wrote {len(rows)} {kind} to {where} (from {len(records)} records in {found.target}: {judged} "
          f"judgments, {len(records) - judged} clicks)", file=sys.stderr)
    if args.json and args.out != "-":
        emit(args, {"out": args.out, "lines": len(rows), "records": len(records), "judgments": judged,
                    "clicks": len(records) - judged})
    return 0


def add_commands(sub) -> None:
    """`feedback add` and `feedback export` under the `winnow` parser's subcommands `sub`."""
    help_ = "record judgments and clicks per query; export them as training pairs (`winnow feedback add --help`)"
    fb = sub.add_parser("feedback", help=help_, description=__doc__, formatter_class=Formatter)
    output_flags(fb)
    inner = fb.add_subparsers(dest="feedback_command", metavar="{add,export}", parser_class=Parser)
    inner.required = True

    def add(name: str, text: str) -> argparse.ArgumentParser:
        sp = inner.add_parser(name, help=text, description=text, formatter_class=Formatter)
        output_flags(sp)
        connection_flags(sp)
        return sp

    ad = add("add", "record judgments (or clicks) of one query's results")
    ad.add_argument("--query-id", required=True,
                    help="the search's request_id, or your own id for the query (judgments of one id belong together)")
    ad.add_argument("--query", required=True, help="the query text")
    ad.add_argument("--click", action="store_true",
                    help="record clicks (relevance 1 unless DOC_ID=REL) instead of explicit judgments")
    ad.add_argument("judgments", nargs="+", metavar="DOC_ID[=REL]",
                    help="documents and their graded relevance (0 = not relevant; DOC_ID alone = 1)")
    ad.set_defaults(func=cmd_add)

    ex = add("export", "write every (query, document) as a judgments file for `winnow train reranker --judgments`")
    ex.add_argument("--out", default="-",
                    help="the JSON-lines file to write (replaced whole); '-' = stdout")
    ex.add_argument("--raw", action="store_true",
                    help="every record as recorded (kind, relevance, recorded_at_ms, seq) instead of training pairs")
    ex.set_defaults(func=cmd_export)
