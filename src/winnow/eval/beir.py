"""Load a BEIR-layout collection: corpus.jsonl, queries.jsonl, qrels/<split>.tsv — each plain or gzipped.

Layout (https://github.com/beir-cellar/beir): ``corpus.jsonl`` lines are ``{"_id", "title"?, "text"}``,
``queries.jsonl`` lines are ``{"_id", "text"}``, ``qrels/<split>.tsv`` is ``query-id<TAB>corpus-id<TAB>score``
with an optional header line. Either ``name`` or ``name.gz`` is accepted (the plain file wins if both exist).
As BEIR's GenericDataLoader does, only queries that appear in the split's qrels are kept.

Any defect is reported as a :class:`DatasetError` that names the file and, where there is one, the line number.
"""

from __future__ import annotations

import gzip
import json
import random
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class DatasetError(ValueError):
    """A BEIR file is missing or malformed; the message names the file (and line) to fix."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.line = line


@dataclass(frozen=True)
class Document:
    """One corpus entry."""

    id: str
    title: str
    text: str


@dataclass(frozen=True)
class BeirDataset:
    """A loaded collection: the whole corpus, and the queries and qrels of one split."""

    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    split: str
    root: Path = field(default=Path("."))

    def sample(self, n: int | None, seed: int = 0) -> BeirDataset:
        """The same collection restricted to ``n`` queries drawn deterministically (by seed) from this split.

        Ids are drawn from the sorted query ids with ``random.Random(seed)``, so the sample depends only on
        the query ids, n and seed. ``n`` None or >= the number of queries returns ``self``.
        """
        if n is None or n >= len(self.queries):
            return self
        if n < 0:
            raise ValueError(f"sample size must be >= 0, got {n}")
        chosen = sorted(random.Random(seed).sample(sorted(self.queries), n))
        return BeirDataset(
            corpus=self.corpus,
            queries={qid: self.queries[qid] for qid in chosen},
            qrels={qid: self.qrels[qid] for qid in chosen},
            split=self.split,
            root=self.root,
        )


def resolve(root: Path, name: str) -> Path:
    """``root/name`` if it exists, else ``root/name.gz``; DatasetError naming both if neither does."""
    plain = root / name
    if plain.is_file():
        return plain
    gz = root / f"{name}.gz"
    if gz.is_file():
        return gz
    raise DatasetError(plain, f"file not found (nor {gz.name})")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded line without newline), reading gzip transparently."""
    opener = gzip.open if path.suffix == ".gz" else open
    lineno = 0
    try:
        with opener(path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                try:
                    yield lineno, raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as exc:
                    raise DatasetError(path, f"not valid UTF-8 ({exc.reason})", lineno) from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(path, f"cannot read: {exc}", lineno + 1 if lineno else None) from None


def _jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(path, f"invalid JSON: {exc.msg} (column {exc.colno})", lineno) from None
        if not isinstance(obj, dict):
            raise DatasetError(path, f"expected a JSON object, got {type(obj).__name__}", lineno)
        yield lineno, obj


def _field(path: Path, lineno: int, obj: dict, key: str, required: bool = True) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise DatasetError(path, f'missing field "{key}"', lineno)
        return ""
    if isinstance(value, (int, float)) and key == "_id" and not isinstance(value, bool):
        return str(value)  # some BEIR exports write numeric ids
    if not isinstance(value, str):
        raise DatasetError(path, f'field "{key}" must be a string, got {type(value).__name__}', lineno)
    return value


def _by_id(path: Path, what: str, read: Callable[[str, int, dict], T]) -> dict[str, T]:
    """``{_id: read(_id, lineno, obj)}`` of a .jsonl(.gz), in file order; a repeated ``_id`` is an error."""
    out: dict[str, T] = {}
    for lineno, obj in _jsonl(path):
        key = _field(path, lineno, obj, "_id")
        if key in out:
            raise DatasetError(path, f'duplicate {what} id "{key}"', lineno)
        out[key] = read(key, lineno, obj)
    return out


def load_corpus(path: Path) -> dict[str, Document]:
    """Documents of a corpus.jsonl(.gz), in file order; ``title`` optional, ``_id`` and ``text`` required."""
    return _by_id(path, "document", lambda doc_id, lineno, obj: Document(
        doc_id, _field(path, lineno, obj, "title", False), _field(path, lineno, obj, "text")))


def load_queries(path: Path) -> dict[str, str]:
    """``{query id: text}`` of a queries.jsonl(.gz), in file order."""
    return _by_id(path, "query", lambda _qid, lineno, obj: _field(path, lineno, obj, "text"))


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``{query id: {doc id: grade}}`` of a qrels tsv(.gz); a first line starting with ``query-id`` is a header."""
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in _lines(path):
        if not line.strip() or (lineno == 1 and line.lower().startswith("query-id")):
            continue
        cols = line.split("\t")
        if len(cols) != 3:
            raise DatasetError(path, f"expected 3 tab-separated columns (query-id, corpus-id, score), got {len(cols)}", lineno)
        qid, doc_id, score = (c.strip() for c in cols)
        if not qid or not doc_id:
            raise DatasetError(path, "empty query-id or corpus-id", lineno)
        try:
            grade = int(score)
        except ValueError:
            raise DatasetError(path, f'score must be an integer, got "{score}"', lineno) from None
        qrels.setdefault(qid, {})[doc_id] = grade
    return qrels


def load_beir(root: Path | str, split: str = "test") -> BeirDataset:
    """Load a BEIR collection directory for one split; keeps only the queries that the split's qrels judge."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, "dataset directory not found")
    corpus = load_corpus(resolve(root, "corpus.jsonl"))
    all_queries = load_queries(resolve(root, "queries.jsonl"))
    qrels_path = resolve(root / "qrels", f"{split}.tsv")
    qrels = load_qrels(qrels_path)
    missing = sorted(set(qrels) - set(all_queries))
    if missing:
        raise DatasetError(qrels_path, f"{len(missing)} query ids not in queries file, e.g. {missing[:3]}")
    queries = {qid: text for qid, text in all_queries.items() if qid in qrels}
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels, split=split, root=root)
