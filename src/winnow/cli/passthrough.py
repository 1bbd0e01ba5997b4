"""`winnow serve | eval | train | bench`: commands whose flags belong to another module's own parser. The `winnow`
parser only lists them; their arguments go, unparsed, to that module's `main`."""

from __future__ import annotations

import importlib
import sys

from winnow.cli.failures import UsageError

SERVICES = ("embedder", "reranker", "index", "gateway")
BENCHES = ("models", "index", "gateway", "replicas", "peers", "log")
COMMANDS = ("eval", "train", "bench", "serve")


def run(command: str, rest: list[str]) -> int:
    """Run `winnow COMMAND REST...` through the module that owns it; its exit code."""
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


def add_commands(sub) -> None:
    """List `serve`, `eval`, `train` and `bench` under the `winnow` parser's subcommands `sub` (no flags of theirs)."""
    sv = sub.add_parser("serve", help="run one service in the foreground (`winnow serve SERVICE --help`: its flags)",
                        add_help=False)
    sv.add_argument("service", choices=SERVICES)
    sub.add_parser("eval", help="retrieval quality on a BEIR dataset (`winnow eval --help`)", add_help=False)
    sub.add_parser("train", help="train the second stage (`winnow train reranker --help`)", add_help=False)
    sub.add_parser("bench", help=f"benchmarks: {', '.join(BENCHES)} (`winnow bench WHAT --help`)", add_help=False)
