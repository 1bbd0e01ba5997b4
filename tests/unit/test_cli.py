"""The `winnow` command's contract without a cluster: every flag has help, failures map to their exit codes, and
--json prints only JSON (an unreachable gateway is a real socket on port 1 that refuses)."""

from __future__ import annotations

import argparse
import json

import grpc
import pytest

from winnow.cli import build_parser, main
from winnow.cli.failures import Exit, classify
from winnow.client.errors import from_rpc_error


def _actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _actions(sub)
        elif action.option_strings and action.dest != "help":
            yield parser.prog, action


def test_every_flag_has_help():
    missing = [f"{prog} {a.option_strings[0]}" for prog, a in _actions(build_parser()) if not a.help]
    assert not missing, missing


def test_search_help_shows_defaults(capsys):
    assert main(["search", "--help"]) == 0
    out = capsys.readouterr().out
    assert "(default: 10)" in out and "(default: hybrid)" in out and "WINNOW_TOKEN" in out


class _Err(grpc.RpcError):
    def __init__(self, code):
        self._c = code

    def code(self):
        return self._c

    def details(self):
        return "boom"

    def trailing_metadata(self):
        return ()


@pytest.mark.parametrize("code, exit_code", [
    (grpc.StatusCode.INVALID_ARGUMENT, Exit.INVALID_ARGUMENT), (grpc.StatusCode.UNAVAILABLE, Exit.UNAVAILABLE),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, Exit.UNAVAILABLE), (grpc.StatusCode.DEADLINE_EXCEEDED, Exit.DEADLINE_EXCEEDED),
    (grpc.StatusCode.UNAUTHENTICATED, Exit.UNAUTHENTICATED), (grpc.StatusCode.INTERNAL, Exit.FAILED),
])
def test_status_codes_map_to_exit_codes(code, exit_code):
    assert classify(from_rpc_error(_Err(code)))[0] == exit_code
    assert classify(_Err(code))[0] == exit_code  # a raw stub error too


def test_unexpected_errors_are_one_line_with_a_hint():
    code, err = classify(RuntimeError("disk on fire"))
    assert code == Exit.FAILED and "RuntimeError: disk on fire" in err["message"] and "--debug" in err["hint"]


@pytest.mark.parametrize("argv, code", [
    (["nope"], Exit.USAGE),
    (["search"], Exit.USAGE),
    (["search", "x", "--filter", "novalue"], Exit.USAGE),
    (["bench", "nope"], Exit.USAGE),
    (["search", "x", "--target", "127.0.0.1:1", "--timeout", "2"], Exit.UNAVAILABLE),
    (["ingest", "/no/such/file.jsonl", "--target", "127.0.0.1:1"], Exit.INVALID_ARGUMENT),
    (["status", "--data-dir", "/no/such/dir"], Exit.UNAVAILABLE),
])
def test_json_errors_are_the_only_stdout(argv, code, capsys, monkeypatch):
    monkeypatch.delenv("WINNOW_TARGET", raising=False)
    assert main([*argv, "--json"]) == code
    out, err = capsys.readouterr()
    parsed = json.loads(out)
    assert parsed["error"]["exit_code"] == code and parsed["error"]["message"]
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("winnow ")
