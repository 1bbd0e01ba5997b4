"""`winnow train ltr` end to end on a tiny BEIR directory (a tiny random BERT as first-stage encoder and as
cross-encoder: plumbing, never quality), and the gateway serving the file: its start refuses a damaged one, and
a search through the real gRPC edge is ordered by the model and says so."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from tests.integration.test_train_reranker import WORDS, tiny_encoder_dir  # noqa: F401 - a fixture
from tests.unit.test_gateway_search import DOCS, FakeEmbedder, FakeLog, FakeReranker, FakeShard
from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.api.gateway.v1 import gateway_pb2_grpc as pb_grpc
from winnow.common.deadline import Deadline
from winnow.models import ltr
from winnow.rpc.server import GrpcService
from winnow.services.gateway import convert_search
from winnow.services.gateway.cache import MemoryBackend, ResultCache
from winnow.services.gateway.ltr import LtrStage
from winnow.services.gateway.model import WriteDocument
from winnow.services.gateway.search import SearchCore
from winnow.services.gateway.server import GatewayServicer
from winnow.services.gateway.settings import GatewaySettings
from winnow.services.gateway.writes import WriteCore
from winnow.train.cli import main


@pytest.fixture(scope="module")
def tiny_cross_encoder_dir(tmp_path_factory) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from winnow.models.loading import default_model_dir

    path = tmp_path_factory.mktemp("tiny-ce")
    tok = BertTokenizerFast(vocab_file=str(default_model_dir() / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(path)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128, num_labels=1)
    BertForSequenceClassification(cfg).save_pretrained(path)
    return path


def _dataset(root: Path) -> Path:
    """30 documents with a year, 15 judged queries (two relevant documents each)."""
    (root / "qrels").mkdir(parents=True)
    docs, queries, qrels = [], [], []
    for i in range(30):
        a, b, c = WORDS[i % 16], WORDS[(i + 3) % 16], WORDS[(i + 7) % 16]
        docs.append({"_id": f"d{i}", "title": f"{a} and {b}", "text": f"The {a} study measured {b} and {c}. " * (1 + i % 3),
                     "metadata": {"year": 1990 + i}})
    for i in range(15):
        a, c = WORDS[i % 16], WORDS[(i + 7) % 16]
        queries.append({"_id": f"q{i}", "text": f"does {a} change {c}"})
        qrels += [f"q{i}\td{i}\t1", f"q{i}\td{i + 15}\t1"]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(qrels) + "\n")
    return root


def _args(ds: Path, out: Path, enc: Path, cache: Path, *extra: str) -> list[str]:
    return ["ltr", "--dataset", str(ds), "--out", str(out), "--first-stage-model", str(enc), "--cache-dir",
            str(cache), "--depth", "8", "--holdout", "3", "--device", "cpu", "--threads", "1", "--no-progress", *extra]


def test_trains_with_the_reranker_feature_reproducibly(tmp_path, tiny_encoder_dir, tiny_cross_encoder_dir):  # noqa: F811
    ds = _dataset(tmp_path / "ds")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    extra = ("--reranker-model", str(tiny_cross_encoder_dir), "--metadata-field", "year")
    assert main(_args(ds, a, tiny_encoder_dir, tmp_path / "cache", *extra)) == 0
    assert main(_args(ds, b, tiny_encoder_dir, tmp_path / "cache", *extra)) == 0
    ma, mb = ltr.load(a), ltr.load(b)
    assert ma.model_id == mb.model_id  # same seed, same file
    assert "reranker" in ma.features and "meta:year" in ma.features and ma.needs_reranker and ma.depth == 8
    r = ma.report
    assert r["chosen"] in ("none", "linear", "lightgbm") and r["held_out_queries"] == 3 and r["fit_queries"] == 12
    assert r["reranker"].startswith("tiny-ce") and "/cross-encoder" in r["reranker"]
    assert {t["model"] for t in r["trials"]} >= {"none", "linear"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_without_a_reranker_the_model_reads_first_stage_features_only(tmp_path, tiny_encoder_dir):  # noqa: F811
    ds = _dataset(tmp_path / "ds")
    out = tmp_path / "fs.json"
    assert main(_args(ds, out, tiny_encoder_dir, tmp_path / "cache", "--models", "linear")) == 0
    model = ltr.load(out)
    assert "reranker" not in model.features and not model.needs_reranker
    assert {t["model"] for t in model.report["trials"]} == {"none", "linear"}


def test_bad_input_exits_2_and_writes_nothing(tmp_path, tiny_encoder_dir, capsys):  # noqa: F811
    ds = _dataset(tmp_path / "ds")
    out = tmp_path / "out.json"
    cache = tmp_path / "cache"
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for extra, message in [
        (("--split", "dev"), "no split 'dev'"),
        (("--reranker-model", str(not_a_model)), "missing config.json"),
        (("--judgments", str(empty)), "empty"),
        (("--models", "xgboost"), "choose from linear, lightgbm"),
        (("--depth", "1"), "--depth >= 2"),
    ]:
        assert main(_args(ds, out, tiny_encoder_dir, cache, *extra)) == 2, extra
        assert message in capsys.readouterr().err
        assert not out.exists()
    assert main(_args(tmp_path / "missing", out, tiny_encoder_dir, cache)) == 2
    assert "not found" in capsys.readouterr().err and not out.exists()
    out.write_text("keep me")
    assert main(_args(ds, out, tiny_encoder_dir, cache)) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "keep me"


def _model_file(tmp_path: Path, features=("reranker", "length"), weights=(0.0, 1.0)) -> Path:
    import numpy as np

    n = len(features)
    path = tmp_path / "ltr.json"
    ltr.save(ltr.LtrModel("linear", tuple(features), np.zeros(n), np.ones(n), weights=np.array(weights), depth=6),
             path, overwrite=True)
    return path


async def test_the_gateway_refuses_to_start_on_a_damaged_model_and_loads_a_good_one(tmp_path):
    from winnow.services.gateway.__main__ import build

    path = _model_file(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(path.read_text().replace('"depth": 6', '"depth": -6'))
    with pytest.raises(ltr.LtrModelError, match=f"LTR model file {bad}"):
        await build(GatewaySettings(port=0, cache="memory", ltr_model=str(bad)))
    wiring = await build(GatewaySettings(port=0, cache="memory", ltr_model=str(path)))
    assert wiring.core.ltr is not None and wiring.core.models["ltr"] == ltr.load(path).label
    await wiring.core.embedder.close()  # nothing was started; the channel is the only thing it opened


async def test_a_served_search_is_ordered_by_the_model_and_reports_it(tmp_path):
    stage = LtrStage.load(_model_file(tmp_path))  # longest text first: not the fake reranker's order
    emb, shards = FakeEmbedder(), [FakeShard("shard-0"), FakeShard("shard-1")]
    writes = WriteCore(emb, shards, log=FakeLog(shards))
    await writes.upsert([WriteDocument(i, t) for i, t in DOCS], Deadline(10))
    core = SearchCore(emb, shards, FakeReranker(), ResultCache(MemoryBackend(), ttl_s=60),
                      encode=convert_search.search_result_to_bytes, ltr=stage)  # the cache holds wire bytes, as served
    await core.refresh_models()
    settings = GatewaySettings(host="127.0.0.1", port=0)

    def register(server):
        pb_grpc.add_GatewayServicer_to_server(GatewayServicer(core, writes, settings), server)
        return ["winnow.gateway.v1.Gateway"]

    svc = GrpcService("gateway", settings, register)
    port = await svc.start()
    await svc.mark_ready()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GatewayStub(channel)
            first = await stub.Search(pb.SearchRequest(query="aspirin fever", k=6, candidate_window=6), timeout=10)
            await core.cache.flush()
            again = await stub.Search(pb.SearchRequest(query="aspirin fever", k=6, candidate_window=6), timeout=10)
        assert first.reranked and first.reranker == f"fake-reranker/overlap+{stage.label}" and "ltr" in first.timings_ms
        lengths = [len(h.text) for h in first.hits]
        assert lengths == sorted(lengths, reverse=True)
        assert [h.score for h in first.hits] == sorted((h.score for h in first.hits), reverse=True)
        assert again.cache_hit and again.reranker == first.reranker and [h.id for h in again.hits] == \
            [h.id for h in first.hits]
    finally:
        await svc.drain(0)
