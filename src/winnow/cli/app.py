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
import sys

from winnow.cli import cluster, passthrough, search, writes
from winnow.cli.common import Formatter, Parser, connection_flags, output_flags
from winnow.cli.failures import __doc__ as EXIT_CODES
from winnow.cli.failures import report
from winnow.cli.feedback import add_commands as add_feedback_commands


def _version() -> str:
    from winnow.common.buildinfo import VERSION, git_sha
    from winnow.services.gateway.server import API_VERSION

    return f"winnow {VERSION} (git {git_sha()}, gateway API {API_VERSION})"


def build_parser() -> argparse.ArgumentParser:
    """The `winnow` parser: each command group's module adds its commands, in the order `--help` lists them."""
    p = Parser(prog="winnow", description=__doc__, formatter_class=Formatter,
               epilog="exit codes:\n" + "\n".join(l for l in EXIT_CODES.splitlines() if l.startswith("|")))
    p.add_argument("--version", action="version", version=_version())
    output_flags(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    def add(name: str, help_: str, connection: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_, formatter_class=Formatter)
        output_flags(sp)
        if connection:
            connection_flags(sp)
        return sp

    cluster.add_up(add)
    cluster.add_down(add)
    cluster.add_status(add)
    search.add_search(add)
    writes.add_ingest(add)
    cluster.add_reshard(add)
    writes.add_delete(add)
    add_feedback_commands(sub)
    passthrough.add_commands(sub)
    return p


# -- entry point --------------------------------------------------------------------------------------------------

def _split(argv: list[str]) -> tuple[list[str], str | None, list[str]]:
    """(global flags, the command, its arguments) without parsing the command's own flags."""
    for i, tok in enumerate(argv):
        if not tok.startswith("-"):
            return argv[:i], tok, argv[i + 1:]
    return argv, None, []


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    head, command, rest = _split(argv)
    # Errors the wrapper itself raises (a passed-through command reports its own): --json/--debug anywhere count.
    json_mode, debug = "--json" in argv, "--debug" in argv
    try:
        if command in passthrough.COMMANDS:
            build_parser().parse_args([*head, "status"])  # global flags: --version, --help, typos
            return passthrough.run(command, rest)
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except SystemExit as exc:  # --help / --version, or a passed-through service's own exit
        return int(exc.code or 0) if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # noqa: BLE001 - the CLI's one place that turns failures into exit codes
        prog = f"winnow {command}" if command else "winnow"
        return report(exc, prog=prog, json_mode=json_mode, debug=debug)
