"""The cores never load the transport: importing any of them, in a fresh interpreter, leaves grpc unloaded.

STYLE.md convention 1: a core "never imports grpc — not even through a shared helper". Following imports is what
counts, so the check runs in a subprocess and looks at `sys.modules`, not at the source text.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import winnow

SRC = Path(winnow.__file__).parent

#: Modules that are the gRPC edge (or wire it) by design; every other module under these packages is a core.
EDGE = {"server", "convert", "clients", "__main__"}
CORE_PACKAGES = ["winnow.common", "winnow.models", "winnow.log", "winnow.services", "winnow.services.embedder",
                 "winnow.services.reranker", "winnow.services.index", "winnow.services.gateway", "winnow.train"]


def core_modules() -> list[str]:
    """Every module of the transport-free packages except the edge modules."""
    out = []
    for package in CORE_PACKAGES:
        path = SRC.joinpath(*package.split(".")[1:])
        out.append(package)
        for info in pkgutil.iter_modules([str(path)]):
            if not info.ispkg and info.name not in EDGE:
                out.append(f"{package}.{info.name}")
    return sorted(set(out))


_PROBE = """
import importlib, json, sys
loaded = {}
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
    if "grpc" in sys.modules and not loaded:
        loaded["first"] = name
print(json.dumps({"grpc": "grpc" in sys.modules, **loaded}))
"""


def test_the_list_of_cores_is_not_empty():
    mods = core_modules()
    for expected in ("winnow.common.errors", "winnow.common.deadline", "winnow.common.batcher",
                     "winnow.services.gateway.search", "winnow.services.gateway.writes",
                     "winnow.services.index.shard", "winnow.services.embedder.core",
                     "winnow.services.reranker.core", "winnow.services.model_core", "winnow.models.encoder"):
        assert expected in mods


def test_importing_every_core_does_not_load_grpc():
    mods = core_modules()
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(mods)], capture_output=True, text=True,
                         timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert not result["grpc"], f"importing {result.get('first')} loaded grpc"


def test_the_edge_does_load_grpc():
    """The probe can see grpc at all: the servers themselves do import it."""
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(["winnow.rpc.server"])], capture_output=True,
                         text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1])["grpc"]
