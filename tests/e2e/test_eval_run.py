"""`winnow eval` end to end: a tiny BEIR collection made here, run through a private cluster of the real services.

The collection has eight documents on unrelated topics and four queries, each sharing its key words with exactly
one document, so every pipeline (BM25, dense, fused, reranked, MRL) must put that document first: nDCG@10 = 1.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from winnow.eval.cli import main

pytestmark = pytest.mark.slow

DOCS = {
    "cat": ("Domestic cats", "Cats are small domesticated felines that purr and hunt mice."),
    "volcano": ("Volcanoes", "A volcano erupts when molten magma and lava escape from the crust of the earth."),
    "bread": ("Baking bread", "Bread dough made of flour, water and yeast rises before baking in an oven."),
    "chess": ("Chess openings", "The Sicilian Defence is a popular chess opening for black against e4."),
    "mars": ("Mars exploration", "Rovers such as Curiosity explore the surface of the planet Mars."),
    "violin": ("The violin", "The violin is a string instrument played with a bow."),
    "tax": ("Income tax", "Income tax is levied by governments on wages and salaries."),
    "coral": ("Coral reefs", "Coral reefs are marine ecosystems built by colonies of tiny coral polyps."),
}
QUERIES = {
    "q1": ("why do cats purr", "cat"),
    "q2": ("lava and magma in a volcano eruption", "volcano"),
    "q3": ("how does yeast make bread dough rise", "bread"),
    "q4": ("rover missions to the planet Mars", "mars"),
}


def _make_dataset(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    with gzip.open(root / "corpus.jsonl.gz", "wt", encoding="utf-8") as fh:
        for doc_id, (title, text) in DOCS.items():
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with gzip.open(root / "queries.jsonl.gz", "wt", encoding="utf-8") as fh:
        for qid, (text, _) in QUERIES.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore", *(f"{qid}\t{doc}\t1" for qid, (_, doc) in QUERIES.items())]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return root


def test_eval_private_cluster_known_ranking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = _make_dataset(tmp_path / "tiny")
    rc = main(["--dataset", str(dataset), "--json", "--no-progress", "--shards", "2",
               "--data-dir", str(tmp_path / "cluster"), "--threshold", "0.3", "--timeout", "120"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-3000:]
    out = json.loads(captured.out)
    assert set(out) == {"lexical", "dense", "hybrid", "hybrid-rrf", "dense+rerank", "hybrid+rerank", "mrl64", "mrl128", "bulk"}
    for name, res in out.items():
        assert res["errors"] == 0, (name, res.get("first_error"))
        assert res["queries"] == len(QUERIES)
        assert res["ndcg@10"] == pytest.approx(1.0), (name, res)
        assert res["mrr@10"] == pytest.approx(1.0), (name, res)
        assert res["recall@100"] == pytest.approx(1.0), (name, res)
        assert "total" in res["latency_ms"] and "client" in res["latency_ms"]
    assert out["hybrid+rerank"]["reranked"] == len(QUERIES)
    assert out["dense+rerank"]["reranked"] == len(QUERIES)
    bulk = out["bulk"]["bulk"]
    assert bulk["recall"] == pytest.approx(1.0)
    assert bulk["returned_mean"] < len(DOCS)  # a threshold, not "everything"
