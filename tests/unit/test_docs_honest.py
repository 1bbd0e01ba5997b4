"""Docs that a test can check stay true: every file and function docs/architecture.md names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
ROW = re.compile(r"^\|[^|]+\|\s*`(?P<file>[^`]+\.py)`\s*\|\s*`(?P<func>[A-Za-z_][\w.]*)`\s*\|\s*$")


def where_rows() -> list[tuple[str, str]]:
    """(file, function) of each row of the "Where does it live" table."""
    text = DOC.read_text()
    section = text.split("## Where does it live", 1)[1]
    return [(m["file"], m["func"]) for m in map(ROW.match, section.splitlines()) if m]


def defined_names(path: Path) -> set[str]:
    """Top-level functions and classes, and `Class.method` for methods, defined in a module."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(f"{node.name}.{item.name}")
    return names


def test_the_table_has_rows():
    assert len(where_rows()) >= 20


def test_every_named_file_and_function_exists():
    missing = []
    for file, func in where_rows():
        path = ROOT / file
        if not path.is_file():
            missing.append(f"{file} (no such file)")
        elif func not in defined_names(path):
            missing.append(f"{file}: {func}")
    assert not missing, "docs/architecture.md names things that do not exist: " + ", ".join(missing)


def test_the_check_catches_a_wrong_name(tmp_path):
    """The matcher itself works: a made-up function is reported missing."""
    module = tmp_path / "m.py"
    module.write_text("class A:\n    def b(self): ...\n\ndef c(): ...\n")
    assert defined_names(module) == {"A", "A.b", "c"}
    assert ROW.match("| x | `src/m.py` | `A.b` |")["func"] == "A.b"


PATH_IN_DOC = re.compile(r"(?<![\w/.-])((?:src|tests|tools|studies|deploy|protos)/[\w./-]+\.(?:py|proto|yml|yaml|json))")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "protos" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_repository_path_the_docs_name_exists():
    """README, protos/README and docs/*.md: every src/, tests/, tools/, studies/, deploy/, protos/ file exists."""
    missing = sorted({f"{doc.relative_to(ROOT)}: {p}" for doc in doc_files()
                      for p in PATH_IN_DOC.findall(doc.read_text()) if not (ROOT / p).exists()})
    assert not missing, "docs name files that do not exist: " + ", ".join(missing)


def test_the_gateway_doc_states_the_defaults_the_code_has():
    """Claims about defaults are read from the code: the fusion default and whether rerank is one call."""
    from winnow.services.gateway.settings import GatewaySettings

    fields = GatewaySettings.model_fields
    doc = (ROOT / "docs" / "gateway.md").read_text()
    assert f"(setting `fusion`, default `{fields['fusion'].default}`)" in doc
    one_call = fields["rerank_batch_size"].default >= fields["default_window"].default
    assert ("one `Rerank` call by default" in doc) == one_call
    assert f"`rerank_batch_size` {fields['rerank_batch_size'].default} holds the default window of " \
           f"{fields['default_window'].default}" in doc
    readme = (ROOT / "README.md").read_text()
    assert ("in one reranker call" in readme) == one_call
