"""Generate the Python gRPC stubs for every contract in protos/ (the one command: `make protos`).

Usage: python tools/gen_protos.py [OUT_DIR]   (default: src/)

Stubs land at OUT_DIR/winnow/api/..., mirroring protos/winnow/api/..., so they import as
`winnow.api.gateway.v1.gateway_pb2` with no sys.path tricks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def proto_files() -> list[Path]:
    return sorted(PROTOS.rglob("*.proto"))


def generate(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(grpc_tools.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTOS)) for p in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Package markers so the stubs are regular packages.
    for proto in proto_files():
        d = out_dir / proto.relative_to(PROTOS).parent
        while d != out_dir / "winnow" and d != out_dir:
            (d / "__init__.py").touch()
            d = d.parent


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "src")
