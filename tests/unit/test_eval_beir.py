"""BEIR loader: plain and gzipped files, and clear errors on bad files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from winnow.eval.beir import DatasetError, load_beir

CORPUS = [
    {"_id": "d1", "title": "Cats", "text": "Cats purr."},
    {"_id": "d2", "text": "Dogs bark."},
    {"_id": "d3", "title": "Birds", "text": "Birds sing."},
]
QUERIES = [
    {"_id": "q1", "text": "what purrs"},
    {"_id": "q2", "text": "what barks"},
    {"_id": "q3", "text": "not judged in test"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td3\t0\n"


def _write(path: Path, text: str, gz: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def make_dataset(root: Path, gz: bool, corpus: str | None = None, qrels: str | None = None) -> Path:
    _write(root / "corpus.jsonl", corpus if corpus is not None else _jsonl(CORPUS), gz)
    _write(root / "queries.jsonl", _jsonl(QUERIES), gz)
    _write(root / "qrels" / "test.tsv", qrels if qrels is not None else QRELS, gz)
    return root


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_loads_plain_and_gz(tmp_path: Path, gz: bool) -> None:
    ds = load_beir(make_dataset(tmp_path, gz))
    assert list(ds.corpus) == ["d1", "d2", "d3"]
    assert ds.corpus["d2"].title == ""
    assert ds.corpus["d1"].text == "Cats purr."
    assert ds.queries == {"q1": "what purrs", "q2": "what barks"}  # q3 is not in the split's qrels
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 0}}
    assert ds.split == "test"


def test_mixed_plain_and_gz(tmp_path: Path) -> None:
    make_dataset(tmp_path, gz=True)
    (tmp_path / "corpus.jsonl").write_text(_jsonl(CORPUS[:1]))  # the plain file wins
    assert list(load_beir(tmp_path).corpus) == ["d1"]


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    bad = _jsonl(CORPUS[:2]) + '{"_id": "d3", "text": \n'
    make_dataset(tmp_path, gz=True, corpus=bad)
    with pytest.raises(DatasetError, match=r"corpus\.jsonl\.gz:3: invalid JSON") as info:
        load_beir(tmp_path)
    assert info.value.line == 3
    assert info.value.path.name == "corpus.jsonl.gz"


def test_missing_field_names_line(tmp_path: Path) -> None:
    make_dataset(tmp_path, gz=False, corpus=_jsonl([CORPUS[0], {"_id": "d9", "title": "no text"}]))
    with pytest.raises(DatasetError, match=r'corpus\.jsonl:2: missing field "text"'):
        load_beir(tmp_path)


def test_missing_qrels_column(tmp_path: Path) -> None:
    make_dataset(tmp_path, gz=False, qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\n")
    with pytest.raises(DatasetError, match=r"test\.tsv:3: expected 3 tab-separated columns"):
        load_beir(tmp_path)


def test_bad_qrels_score(tmp_path: Path) -> None:
    make_dataset(tmp_path, gz=True, qrels="q1\td1\thigh\n")
    with pytest.raises(DatasetError, match=r'test\.tsv\.gz:1: score must be an integer, got "high"'):
        load_beir(tmp_path)


def test_missing_file(tmp_path: Path) -> None:
    make_dataset(tmp_path, gz=False)
    (tmp_path / "queries.jsonl").unlink()
    with pytest.raises(DatasetError, match=r"queries\.jsonl: file not found \(nor queries\.jsonl\.gz\)"):
        load_beir(tmp_path)


def test_missing_split(tmp_path: Path) -> None:
    make_dataset(tmp_path, gz=False)
    with pytest.raises(DatasetError, match=r"train\.tsv: file not found"):
        load_beir(tmp_path, split="train")


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset directory not found"):
        load_beir(tmp_path / "nope")


def test_corrupt_gzip(tmp_path: Path) -> None:
    make_dataset(tmp_path, gz=True)
    (tmp_path / "queries.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DatasetError, match=r"queries\.jsonl\.gz.*cannot read"):
        load_beir(tmp_path)


def test_duplicate_id(tmp_path: Path) -> None:
    make_dataset(tmp_path, gz=False, corpus=_jsonl([CORPUS[0], CORPUS[0]]))
    with pytest.raises(DatasetError, match=r'corpus\.jsonl:2: duplicate document id "d1"'):
        load_beir(tmp_path)


def test_qrels_query_missing_from_queries(tmp_path: Path) -> None:
    make_dataset(tmp_path, gz=False, qrels="q1\td1\t1\nq7\td1\t1\n")
    with pytest.raises(DatasetError, match=r"test\.tsv: 1 query ids not in queries file"):
        load_beir(tmp_path)


def test_sample_is_deterministic(tmp_path: Path) -> None:
    ds = load_beir(make_dataset(tmp_path, gz=False))
    one, again = ds.sample(1, seed=3), ds.sample(1, seed=3)
    assert one.queries == again.queries and len(one.queries) == 1
    assert set(one.qrels) == set(one.queries)
    assert one.corpus is ds.corpus
    assert ds.sample(None) is ds and ds.sample(10) is ds
