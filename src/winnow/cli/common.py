"""What every `winnow` command shares: the parser classes, the output and connection flags, the client for the
cluster the flags point at, and JSON output."""

from __future__ import annotations

import argparse
import json
from typing import Any

from winnow.cli.failures import CliError, Exit, UsageError

DEFAULT_DATA_DIR = ".winnow"


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's layout and shows every flag's default."""


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line, exit 2, JSON with --json) instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def output_flags(p: argparse.ArgumentParser, top: bool = False) -> None:
    """--json and --debug on `p`."""
    # On subcommands the defaults are SUPPRESS so `winnow --json status` and `winnow status --json` both work.
    default = False if top else argparse.SUPPRESS
    p.add_argument("--json", action="store_true", default=default,
                   help="print only JSON on stdout (errors too: {\"error\": {...}})")
    p.add_argument("--debug", action="store_true", default=default, help="show the traceback of a failure")


def connection_flags(p: argparse.ArgumentParser) -> None:
    """Which gateway, with which token and TLS, and the per-request timeout: the flags `connect` reads."""
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


def connect(args, timeout: float | None = None):
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


def emit(args, payload: Any) -> None:
    """`payload` as JSON on stdout, indented."""
    print(json.dumps(payload, indent=None if getattr(args, "compact", False) else 2))
