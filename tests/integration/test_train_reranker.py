"""`winnow train reranker` end to end on a tiny BEIR directory with a tiny random BERT (plumbing, never quality):
the output loads with sentence-transformers' CrossEncoder and the reranker's scorer, a seed makes it
reproducible, and bad input exits 2 with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from winnow.train.cli import main

WORDS = ("protein cell gene cancer vitamin immune brain heart blood drug virus tumor receptor insulin "
         "mutation therapy").split()


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from winnow.models.loading import default_model_dir

    path = tmp_path_factory.mktemp("tiny-encoder")
    tok = BertTokenizerFast(vocab_file=str(default_model_dir() / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(path)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(path)
    return path


def _dataset(root: Path, titles: bool = True) -> Path:
    (root / "qrels").mkdir(parents=True)
    docs, queries, qrels = [], [], []
    for i in range(16):
        a, b, c = WORDS[i], WORDS[(i + 3) % 16], WORDS[(i + 7) % 16]
        text = (f"The {a} study measured {b} levels. Results show {a} changes {c} in patients. "
                f"Further work on {b} and {c} is needed.")
        docs.append({"_id": f"d{i}", "title": f"{a.title()} and {b} in {c}" if titles else "", "text": text})
        if i < 8:
            queries.append({"_id": f"q{i}", "text": f"does {a} change {c}"})
            qrels.append(f"q{i}\td{i}\t1")
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(qrels) + "\n")
    return root


def _args(ds: Path, out: Path, enc: Path, cache: Path, *extra: str) -> list[str]:
    return ["reranker", "--dataset", str(ds), "--out", str(out), "--base-model", str(enc),
            "--first-stage-model", str(enc), "--cache-dir", str(cache), "--epochs", "2", "--negatives", "2",
            "--groups-per-batch", "2", "--max-length", "48", "--holdout", "2", "--fusion-depth", "5",
            "--device", "cpu", "--threads", "1", "--no-progress", *extra]


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_trains_loads_and_is_deterministic(tmp_path, tiny_encoder_dir):
    from sentence_transformers import CrossEncoder

    from winnow.models.scorer import Candidate, CrossEncoderScorer

    ds = _dataset(tmp_path / "ds")
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(_args(ds, a, tiny_encoder_dir, tmp_path / "cache", "--seed", "7")) == 0
    assert main(_args(ds, b, tiny_encoder_dir, tmp_path / "cache", "--seed", "7")) == 0
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
    manifest = json.loads((a / "winnow_reranker.json").read_text())
    assert manifest["scorer"] == "cross-encoder" and manifest["max_length"] == 48
    assert 0 <= manifest["fusion_weight"] <= 1 and manifest["cascade_depth"] in (0, 1, 2, 3, 4)  # <= fusion depth
    assert manifest["trained"]["training"]["steps"] > 0 and manifest["trained"]["source"] == "split train"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directory left behind
    scores = CrossEncoder(str(a), device="cpu").predict([("does protein change gene", "protein gene study")])
    assert len(scores) == 1
    scorer = CrossEncoderScorer(a, device="cpu")
    assert scorer.max_length == 48 and scorer.weight == manifest["fusion_weight"]
    cands = [Candidate(f"d{i}", f"text {w} " * (i + 1), i + 1, 1.0 / (i + 1)) for i, w in enumerate(WORDS[:5])]
    assert len(scorer.score("protein", cands)) == 5


def test_self_supervised_without_titles(tmp_path, tiny_encoder_dir):
    ds = _dataset(tmp_path / "ds", titles=False)
    out = tmp_path / "ss"
    assert main(_args(ds, out, tiny_encoder_dir, tmp_path / "cache", "--self-supervised")) == 0
    trained = json.loads((out / "winnow_reranker.json").read_text())["trained"]
    assert trained["source"] == "self-supervised" and trained["mining"]["kinds"]["title"] == 0


def test_bad_input_exits_2_and_writes_nothing(tmp_path, tiny_encoder_dir, capsys):
    ds = _dataset(tmp_path / "ds")
    out = tmp_path / "out"
    cache = tmp_path / "cache"
    bad_model = tmp_path / "not-a-model"
    bad_model.mkdir()
    assert main(_args(ds, out, tiny_encoder_dir, cache, "--split", "dev")) == 2
    assert "no split 'dev'" in capsys.readouterr().err
    assert main(_args(ds, out, bad_model, cache)) == 2
    assert "missing config.json" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(_args(ds, out, tiny_encoder_dir, cache, "--judgments", str(empty))) == 2
    assert "empty" in capsys.readouterr().err
    assert main(_args(tmp_path / "missing", out, tiny_encoder_dir, cache)) == 2
    assert not out.exists()
    out.mkdir()
    assert main(_args(ds, out, tiny_encoder_dir, cache)) == 2
    assert "--overwrite" in capsys.readouterr().err
