"""Where judged training queries come from: a BEIR split, or a plain judgments file; every defect a clear error.

A judgments file is either
- JSON lines, one judgment a line: ``{"query": "text", "doc_id": "D1", "relevance": 1}`` (``query_id`` may stand in
  for ``query`` when the dataset has a queries file; ``relevance`` is an integer, > 0 relevant, 0 judged not), or
- a qrels TSV (``query-id<TAB>corpus-id<TAB>score``, optional header): the query texts come from the dataset.
Documents are always named by id and read from the dataset's corpus.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from winnow.eval.beir import BeirDataset, DatasetError, Document, load_corpus, load_qrels, load_queries, resolve


class TrainInputError(ValueError):
    """Bad training input (dataset, split, judgments file, model directory): the message says what to fix."""


@dataclass
class JudgedQuery:
    """One training query: its text, and the corpus ids judged relevant (grade > 0) or judged not (grade 0)."""

    id: str
    text: str
    positives: dict[str, int] = field(default_factory=dict)
    negatives: set[str] = field(default_factory=set)


def _available_splits(root: Path) -> list[str]:
    qdir = root / "qrels"
    if not qdir.is_dir():
        return []
    return sorted({p.name.split(".")[0] for p in qdir.iterdir() if p.name.endswith((".tsv", ".tsv.gz"))})


def load_dataset_corpus(root: Path) -> dict[str, Document]:
    """The corpus of a BEIR directory (TrainInputError when the directory or corpus is missing/malformed)."""
    root = Path(root)
    if not root.is_dir():
        raise TrainInputError(f"dataset directory {root} not found")
    try:
        return load_corpus(resolve(root, "corpus.jsonl"))
    except DatasetError as exc:
        raise TrainInputError(str(exc)) from None


def _queries_file(root: Path) -> dict[str, str]:
    try:
        return load_queries(resolve(root, "queries.jsonl"))
    except DatasetError as exc:
        raise TrainInputError(str(exc)) from None


def _build(qrels: dict[str, dict[str, int]], texts: dict[str, str], corpus: dict[str, Document],
           source: str) -> list[JudgedQuery]:
    out: list[JudgedQuery] = []
    unknown_docs = 0
    for qid, rels in qrels.items():
        if qid not in texts:
            raise TrainInputError(f"{source}: query id {qid!r} has no text (not in the queries file)")
        q = JudgedQuery(qid, texts[qid])
        for doc, grade in rels.items():
            if doc not in corpus:
                unknown_docs += 1
                continue
            if grade > 0:
                q.positives[doc] = grade
            else:
                q.negatives.add(doc)
        if q.positives:
            out.append(q)
    if unknown_docs:
        import logging

        logging.getLogger(__name__).warning("%s: %d judgments name documents not in the corpus (ignored)",
                                            source, unknown_docs)
    if not out:
        raise TrainInputError(f"{source}: no query has a relevant (grade > 0) judgment of a corpus document; "
                              "nothing to train on")
    return out


def from_split(root: Path, split: str, corpus: dict[str, Document]) -> list[JudgedQuery]:
    """Judged queries of a BEIR split (`qrels/<split>.tsv`)."""
    root = Path(root)
    try:
        path = resolve(root / "qrels", f"{split}.tsv")
    except DatasetError:
        have = _available_splits(root)
        raise TrainInputError(f"dataset {root} has no split {split!r} (no qrels/{split}.tsv[.gz]); available: "
                              f"{', '.join(have) or 'none'}") from None
    try:
        qrels = load_qrels(path)
    except DatasetError as exc:
        raise TrainInputError(str(exc)) from None
    if not qrels:
        raise TrainInputError(f"{path}: no judgments in the file")
    return _build(qrels, _queries_file(root), corpus, str(path))


def add_source_flags(parser: argparse.ArgumentParser) -> argparse._MutuallyExclusiveGroup:
    """`--dataset` and the choice of judgments `from_source` reads (`--split` or `--judgments`); returns that
    group, so a command can offer one more source in it (`winnow train reranker --self-supervised`)."""
    parser.add_argument("--dataset", required=True, type=Path, help="BEIR-layout directory: its corpus (and queries).")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--split", default=None, help="qrels split to train on (default: train).")
    src.add_argument("--judgments", type=Path, default=None,
                     help="a judgments file (JSON lines {query|query_id, doc_id, relevance} or a qrels TSV).")
    return src


def from_source(root: Path, corpus: dict[str, Document], judgments: Path | None,
                split: str | None) -> tuple[str, list[JudgedQuery]]:
    """(where the judgments came from, the judged queries): the judgments file when given, else the split
    (default train)."""
    if judgments is not None:
        return f"judgments {judgments}", from_file(judgments, root, corpus)
    split = split or "train"
    return f"split {split}", from_split(root, split, corpus)


def from_file(path: Path, root: Path, corpus: dict[str, Document]) -> list[JudgedQuery]:
    """Judged queries of a judgments file (JSON lines or qrels TSV; see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise TrainInputError(f"judgments file {path} not found")
    try:
        raw = path.read_bytes()
        text = (__import__("gzip").decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise TrainInputError(f"{path}: cannot read: {exc}") from None
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if not lines:
        raise TrainInputError(f"{path}: the judgments file is empty")
    if not lines[0][1].lstrip().startswith("{"):
        try:
            qrels = load_qrels(path)
        except DatasetError as exc:
            raise TrainInputError(f"{exc} (a judgments file is JSON lines or a qrels TSV)") from None
        return _build(qrels, _queries_file(Path(root)), corpus, str(path))
    qrels: dict[str, dict[str, int]] = {}
    texts: dict[str, str] = {}
    known: dict[str, str] | None = None
    for lineno, line in lines:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainInputError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise TrainInputError(f"{path}:{lineno}: expected a JSON object")
        doc, grade = obj.get("doc_id"), obj.get("relevance", obj.get("label"))
        if not isinstance(doc, (str, int)) or isinstance(doc, bool) or str(doc) == "":
            raise TrainInputError(f'{path}:{lineno}: missing or invalid "doc_id"')
        if not isinstance(grade, int) or isinstance(grade, bool):
            raise TrainInputError(f'{path}:{lineno}: "relevance" must be an integer (> 0 relevant, 0 not)')
        qtext, qid = obj.get("query"), obj.get("query_id")
        if isinstance(qtext, str) and qtext.strip():
            qid = str(qid) if qid is not None else f"q:{qtext}"
            texts[qid] = qtext
        elif qid is not None:
            if known is None:
                known = _queries_file(Path(root))
            qid = str(qid)
            if qid not in known:
                raise TrainInputError(f"{path}:{lineno}: query_id {qid!r} is not in the dataset's queries file")
            texts[qid] = known[qid]
        else:
            raise TrainInputError(f'{path}:{lineno}: needs "query" (text) or "query_id"')
        qrels.setdefault(qid, {})[str(doc)] = grade
    return _build(qrels, texts, corpus, str(path))
