"""The code's shape stays the one docs/architecture.md describes: each promise below has one place in the code.

Read from the source with `ast` (nothing is imported or run), so a new module is checked the day it appears.
"""

from __future__ import annotations

import ast
from pathlib import Path

import winnow

SRC = Path(winnow.__file__).parent


def _modules(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((SRC / folder).rglob("*.py")) if "_pb2" not in p.name]


def _rel(path: Path) -> str:
    return str(path.relative_to(SRC.parent)) if path.is_relative_to(SRC.parent) else str(path)


def _catches_rpc_errors(tree: ast.AST) -> int:
    """How many `except` clauses name grpc.RpcError or grpc.aio.AioRpcError."""
    n = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            text = ast.unparse(node.type)
            n += "RpcError" in text
    return n


def test_downstream_rpc_errors_are_translated_in_one_place():
    """Services turn a downstream RpcError into a domain error only in gateway/clients.py (`_Client.call`/`stream`)."""
    offenders = [f"{_rel(p)} ({n})" for p in _modules("services")
                 if (n := _catches_rpc_errors(ast.parse(p.read_text()))) and p.name != "clients.py"]
    assert not offenders, ("catch RpcError only in winnow/services/gateway/clients.py (_Client.call / "
                           "_Client.stream): " + ", ".join(offenders))


def test_the_offline_model_switch_is_forced_in_one_place():
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE are set only by winnow.models.loading.force_offline.

    The one exception, bench/peers/driverlib.py, runs inside the peer engines' own virtual environments, where
    winnow cannot be imported (its docstring says so).
    """
    allowed = {SRC / "models" / "loading.py", SRC / "bench" / "peers" / "driverlib.py"}
    offenders = []
    for path in _modules("."):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") \
                    and path not in allowed:
                offenders.append(f"{_rel(path)}:{node.lineno}")
    assert not offenders, ("set the offline switch only through winnow.models.loading.force_offline() (importing "
                           "winnow.models calls it): " + ", ".join(offenders))


def _reads_environment(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") \
                and isinstance(node.value, ast.Name) and node.value.id == "os":
            lines.append(node.lineno)
    return lines


def test_only_the_settings_read_the_environment():
    """STYLE.md 4: env vars reach a service through its typed settings object; cores and the edge never read them."""
    allowed = {SRC / "models" / "loading.py"}  # force_offline writes the switch, it reads nothing
    offenders = [f"{_rel(p)}:{line}" for p in _modules("services", "rpc", "common", "models") if p not in allowed
                 for line in _reads_environment(ast.parse(p.read_text()))]
    assert not offenders, "read env vars through a settings field (common/settings.py): " + ", ".join(offenders)


def _message_constructions(path: Path) -> list[str]:
    """Calls like `pb.SearchResponse(...)` on a generated `*_pb2` module imported into `path`."""
    tree = ast.parse(path.read_text())
    stubs = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             and (node.module or "").startswith("winnow.api") for a in node.names if a.name.endswith("_pb2")}
    return [f"{_rel(path)}:{node.lineno} {ast.unparse(node.func)}" for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id in stubs]


def test_servicers_build_no_messages():
    """STYLE.md 2: a servicer decodes, calls the core and encodes through its service's convert.py."""
    offenders = [c for p in sorted((SRC / "services").glob("*/server.py")) for c in _message_constructions(p)]
    assert not offenders, "build messages in the service's convert.py (x_to_proto): " + ", ".join(offenders)


def test_the_message_check_sees_a_construction(tmp_path):
    servicer = tmp_path / "server.py"
    servicer.write_text("from winnow.api.gateway.v1 import gateway_pb2 as pb\n\n"
                        "def Get(request):\n    return pb.GetResponse(missing=[])\n")
    assert _message_constructions(servicer) == [f"{servicer}:4 pb.GetResponse"]
