"""How the `winnow` command fails: one line on stderr, a documented exit code per kind of failure, and (with
--json) one JSON object on stdout. A traceback only with --debug.

| exit | kind               | when |
|------|--------------------|------|
| 0    | ok                 | |
| 1    | failed             | anything else (an internal error, a service that failed to start); --debug shows why |
| 2    | usage              | unknown command or flag, a missing or malformed argument |
| 3    | invalid_argument   | the server (or a local check) rejected the request or the input file |
| 4    | unavailable        | no cluster found, the gateway unreachable or overloaded, every shard down |
| 5    | deadline_exceeded  | the request did not finish within --timeout |
| 6    | unauthenticated    | missing or wrong token (WINNOW_TOKEN), or not allowed |
| 130  | interrupted        | Ctrl-C |
"""

from __future__ import annotations

import enum
import json
import sys
import traceback
from typing import Any, TextIO

import grpc


class Exit(enum.IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    INVALID_ARGUMENT = 3
    UNAVAILABLE = 4
    DEADLINE_EXCEEDED = 5
    UNAUTHENTICATED = 6
    INTERRUPTED = 130


_BY_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: Exit.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE: Exit.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND: Exit.INVALID_ARGUMENT,
    grpc.StatusCode.UNAVAILABLE: Exit.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Exit.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: Exit.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAUTHENTICATED: Exit.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: Exit.UNAUTHENTICATED,
}


class CliError(Exception):
    """A failure the CLI itself detects, with its exit code (and extra fields for --json)."""

    def __init__(self, message: str, exit_code: Exit = Exit.FAILED, **extra: Any) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.extra = extra


class UsageError(CliError):
    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message, Exit.USAGE, **extra)


def classify(exc: BaseException) -> tuple[Exit, dict[str, Any]]:
    """The exit code and the JSON error object for an exception."""
    from winnow.client.errors import WinnowError

    if isinstance(exc, CliError):
        return exc.exit_code, {"kind": exc.exit_code.name.lower(), "message": str(exc), **exc.extra}
    if isinstance(exc, WinnowError):
        code = _BY_STATUS.get(exc.code(), Exit.FAILED)
        return code, {"kind": code.name.lower(), **exc.to_json()}
    if isinstance(exc, grpc.RpcError):  # a raw stub call somewhere
        status = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        code = _BY_STATUS.get(status, Exit.FAILED)
        return code, {"kind": code.name.lower(), "code": status.name,
                      "message": exc.details() if hasattr(exc, "details") else str(exc)}
    if isinstance(exc, KeyboardInterrupt):
        return Exit.INTERRUPTED, {"kind": "interrupted", "message": "interrupted"}
    if _is_input_error(exc):
        return Exit.INVALID_ARGUMENT, {"kind": "invalid_argument", "message": str(exc)}
    return Exit.FAILED, {"kind": "failed", "message": f"{type(exc).__name__}: {exc}",
                         "hint": "rerun with --debug for the traceback"}


def _is_input_error(exc: BaseException) -> bool:
    from winnow.eval.beir import DatasetError
    from winnow.ingest import CorpusError

    return isinstance(exc, (CorpusError, DatasetError, ValueError, FileNotFoundError))


def report(exc: BaseException, *, prog: str, json_mode: bool, debug: bool, stdout: TextIO | None = None,
           stderr: TextIO | None = None) -> int:
    """Print the failure (one line; JSON on stdout with --json; the traceback with --debug); return the exit code."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    code, err = classify(exc)
    if debug:
        traceback.print_exception(exc, file=stderr)
    line = f"{prog}: {err['kind'].replace('_', ' ')}: {err['message']}"
    if err.get("hint") and not debug:
        line += f" ({err['hint']})"
    print(line, file=stderr)
    if json_mode:
        print(json.dumps({"error": {**err, "exit_code": int(code)}}), file=stdout)
    return int(code)
