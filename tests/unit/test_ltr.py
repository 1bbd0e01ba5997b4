"""Learning to rank: the features, the linear (and LightGBM) models, the model file, and the gateway's stage."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.unit.test_gateway_search import DOCS, FakeEmbedder, FakeLog, FakeReranker, FakeShard
from winnow.common.deadline import Deadline
from winnow.models import ltr
from winnow.models.ltr_features import BASE_FEATURES, check_names, feature_matrix
from winnow.services.gateway.cache import MemoryBackend, ResultCache
from winnow.services.gateway.ltr import LtrStage
from winnow.services.gateway.model import Candidate, SearchOptions, WriteDocument
from winnow.services.gateway.search import SearchCore
from winnow.services.gateway.writes import WriteCore
from winnow.train.ltr_fit import Group, choose, fit_linear, mean_ndcg, normalisation


def _cand(i, dense=None, lexical=None, fused=0.0, rank=1, rerank=None, text="x", meta=""):
    return Candidate(id=f"d{i}", text=text, metadata_json=meta, dense_score=dense, lexical_score=lexical,
                     first_stage_score=fused, first_stage_rank=rank, rerank_score=rerank)


def test_features_are_z_scores_over_the_window_and_absent_values_get_the_minimum():
    cands = [_cand(0, dense=0.9, lexical=12.0, fused=1.0, rank=1, rerank=3.0, text="a" * 99),
             _cand(1, dense=0.5, fused=0.0, rank=2, rerank=1.0, text="b" * 9),
             _cand(2, lexical=4.0, fused=-1.0, rank=3, rerank=2.0, text="")]
    x = feature_matrix(cands, BASE_FEATURES)
    col = {n: x[:, j] for j, n in enumerate(BASE_FEATURES)}
    dense = np.array([0.9, 0.5, 0.5])  # absent -> the lowest present value, then z
    assert np.allclose(col["dense"], (dense - dense.mean()) / dense.std())
    lexical = np.array([12.0, 4.0, 4.0])
    assert np.allclose(col["lexical"], (lexical - lexical.mean()) / lexical.std())
    assert np.allclose(col["fused"], [1.2247449, 0.0, -1.2247449])
    assert np.argmax(col["reranker"]) == 0 and np.argmin(col["reranker"]) == 1
    assert np.allclose(col["rank"], [1 / 61, 1 / 62, 1 / 63])
    assert col["dense_present"].tolist() == [1, 1, 0] and col["lexical_present"].tolist() == [1, 0, 1]
    assert np.allclose(col["length"], [math.log(100), math.log(10), 0.0])
    # the same list in another order gives the same rows
    again = feature_matrix(cands[::-1], BASE_FEATURES)
    assert np.allclose(again[::-1], x)


def test_a_flat_or_missing_list_gives_zeros_and_metadata_reads_numbers_only():
    cands = [_cand(0, meta='{"year": 2020, "a": {"b": 3}}'), _cand(1, meta='{"year": true, "a": {"b": "x"}}'),
             _cand(2, meta="not json"), _cand(3, meta='{"year": 2010}')]
    x = feature_matrix(cands, ["dense", "reranker", "meta:year", "meta:a.b"])
    assert (x[:, 0] == 0).all() and (x[:, 1] == 0).all()
    assert x[:, 2].tolist() == [2020, 2010, 2010, 2010]  # bool and unreadable are absent -> the list's minimum
    assert x[:, 3].tolist() == [3, 3, 3, 3]
    assert feature_matrix([], BASE_FEATURES).shape == (0, len(BASE_FEATURES))


def test_unknown_feature_names_are_refused():
    with pytest.raises(ValueError, match="unknown feature 'bm42'"):
        check_names(["dense", "bm42"])
    with pytest.raises(ValueError, match="repeat"):
        check_names(["dense", "dense"])


def _synthetic(n_queries: int, seed: int, features=("fused", "reranker", "length")) -> list[Group]:
    """Windows of 20 where only the `length` column says what is relevant; the others are noise."""
    rng = np.random.default_rng(seed)
    out = []
    for q in range(n_queries):
        x = rng.standard_normal((20, len(features)))
        y = np.zeros(20, dtype=int)
        y[np.argsort(-x[:, features.index("length")])[:2]] = 1
        ids = [f"q{q}d{i}" for i in range(20)]
        out.append(Group(x, y, ids, np.arange(1, 21), {ids[i]: 1 for i in np.nonzero(y)[0]}))
    return out


def test_the_linear_model_learns_the_one_feature_that_carries_the_signal():
    features = ("fused", "reranker", "length")
    fit, held = _synthetic(60, 0), _synthetic(20, 1)
    mean, scale = normalisation(fit)
    w = fit_linear(fit, mean, scale, l2=1e-3)
    assert np.argmax(np.abs(w)) == 2 and w[2] > 0 and abs(w[2]) > 5 * max(abs(w[0]), abs(w[1]))
    assert np.array_equal(w, fit_linear(fit, mean, scale, l2=1e-3))  # deterministic
    model = choose(fit, held, features, depth=20, kinds=("linear",))
    assert model.kind == "linear" and model.report["chosen"] == "linear"
    assert model.report["held_out_ndcg@10"]["linear"] > 0.99 > model.report["held_out_ndcg@10"]["none"]
    assert mean_ndcg(held, lambda g: model.score_matrix(g.x)) > 0.99


def test_no_ltr_wins_when_the_features_carry_nothing_and_the_file_then_keeps_the_reranker_order():
    features = ("fused", "reranker", "length")
    rng = np.random.default_rng(3)
    groups = []
    for q in range(50):  # relevance follows the reranker column exactly; a fitted model cannot beat it
        x = rng.standard_normal((10, 3))
        y = (x[:, 1] == x[:, 1].max()).astype(int)
        ids = [f"{q}-{i}" for i in range(10)]
        groups.append(Group(x, y, ids, np.arange(1, 11), {ids[int(np.argmax(x[:, 1]))]: 1}))
    model = choose(groups[:40], groups[40:], features, depth=10, kinds=("linear",))
    assert model.report["chosen"] in ("none", "linear")
    if model.report["chosen"] == "none":
        assert model.weights.tolist() == [0.0, 1.0, 0.0]
    g = groups[45]
    assert np.argmax(model.score_matrix(g.x)) == np.argmax(g.x[:, 1])


@pytest.mark.skipif(not ltr.lightgbm_available(), reason="lightgbm is not installed (pip install 'winnow[ltr]')")
def test_lightgbm_learns_the_signal_and_round_trips(tmp_path):
    features = ("fused", "reranker", "length")
    model = choose(_synthetic(80, 0), _synthetic(30, 1), features, depth=20, kinds=("lightgbm",))
    assert model.report["held_out_ndcg@10"]["lightgbm"] > 0.9
    if model.kind == "lightgbm":
        path = tmp_path / "m.json"
        ltr.save(model, path)
        back = ltr.load(path)
        g = _synthetic(1, 5)[0]
        assert back.model_id == model.model_id and np.allclose(back.score_matrix(g.x), model.score_matrix(g.x))


def _linear(features=("fused", "length"), weights=(0.0, -1.0)) -> ltr.LtrModel:
    n = len(features)
    return ltr.LtrModel("linear", tuple(features), np.zeros(n), np.ones(n), weights=np.array(weights, float), depth=6,
                        report={"chosen": "linear"})


def test_the_model_file_round_trips_and_a_damaged_one_is_refused(tmp_path):
    path = tmp_path / "ltr.json"
    model = _linear()
    ltr.save(model, path)
    assert [p.name for p in tmp_path.iterdir()] == ["ltr.json"]  # no temporary file left
    back = ltr.load(path)
    assert back.model_id == model.model_id and back.label == f"ltr-linear@{model.model_id}"
    cands = [_cand(i, fused=float(i), rank=3 - i, text="w" * (i + 1)) for i in range(3)]
    assert np.allclose(back.score(cands), model.score(cands))
    with pytest.raises(FileExistsError):
        ltr.save(model, path)
    data = json.loads(path.read_text())
    for damage, message in [
        (lambda d: d["weights"].__setitem__(0, 5.0), "does not match the content"),
        (lambda d: d.__setitem__("features", ["fused", "bogus"]), "unknown feature"),
        (lambda d: d["normalisation"]["scale"].__setitem__(0, 0.0), "must be > 0"),
        (lambda d: d.__setitem__("weights", [1.0]), "one per feature"),
        (lambda d: d.__setitem__("kind", "xgboost"), '"kind" must be one of'),
        (lambda d: d.__setitem__("format", "other"), "not a Winnow LTR model"),
    ]:
        bad = json.loads(json.dumps(data))
        damage(bad)
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(ltr.LtrModelError, match=message):
            ltr.load(tmp_path / "bad.json")
    (tmp_path / "cut.json").write_text(path.read_text()[:40])
    with pytest.raises(ltr.LtrModelError, match="not valid JSON"):
        ltr.load(tmp_path / "cut.json")
    with pytest.raises(ltr.LtrModelError, match="not found"):
        ltr.load(tmp_path / "missing.json")


async def _world(stage: LtrStage | None, reranker=True):
    emb, rr = FakeEmbedder(), FakeReranker()
    shards = [FakeShard("shard-0"), FakeShard("shard-1")]
    writes = WriteCore(emb, shards, log=FakeLog(shards))
    await writes.upsert([WriteDocument(i, t) for i, t in DOCS], Deadline(10))
    core = SearchCore(emb, shards, rr if reranker else None, ResultCache(MemoryBackend(), ttl_s=60), ltr=stage)
    await core.refresh_models()
    return core, rr


async def test_the_gateway_orders_the_reranked_window_by_the_model_and_says_so():
    # Prefer the longest text: the opposite of the fake reranker, which prefers short exact matches.
    stage = LtrStage(_linear(("reranker", "length"), (0.0, 1.0)))
    core, _ = await _world(stage)
    plain, _ = await _world(None)
    opts = SearchOptions(query="aspirin fever", k=6, window=6)
    r = await core.search(opts, Deadline(5))
    base = await plain.search(opts, Deadline(5))
    assert r.reranked and base.reranked
    lengths = [len(h.text) for h in r.hits]
    assert lengths == sorted(lengths, reverse=True) and [h.id for h in r.hits] != [h.id for h in base.hits]
    assert all(h.score == h.ltr_score and h.rerank_score is not None for h in r.hits)
    assert r.reranker == f"fake-reranker/overlap+{stage.label}" and "ltr" in r.timings_ms
    assert base.reranker == "fake-reranker/overlap" and "ltr" not in base.timings_ms
    layout = core.topology.current()
    assert core._key(opts, layout, {0: 1}) != plain._key(opts, plain.topology.current(), {0: 1})
    # a search that asks for no rerank keeps the first-stage order, untouched by the model
    first = await core.search(SearchOptions(query="aspirin fever", k=6, window=6, rerank=False), Deadline(5))
    assert [h.first_stage_rank for h in first.hits] == sorted(h.first_stage_rank for h in first.hits)
    assert first.reranker == "" and "ltr" not in first.timings_ms


async def test_without_the_reranker_a_first_stage_model_still_orders_and_one_needing_it_is_skipped():
    first_stage_only = LtrStage(_linear(("fused", "length"), (0.0, 1.0)))
    core, rr = await _world(first_stage_only)
    rr.fail = True
    r = await core.search(SearchOptions(query="aspirin fever", k=6, window=6), Deadline(5))
    assert not r.reranked and r.reranker == first_stage_only.label
    assert "reranker failed" in r.rerank_skipped_reason and "ordered by ltr-linear@" in r.rerank_skipped_reason
    lengths = [len(h.text) for h in r.hits]
    assert lengths == sorted(lengths, reverse=True)

    needs = LtrStage(_linear(("reranker", "length"), (1.0, 0.0)))
    core, rr = await _world(needs, reranker=False)
    r = await core.search(SearchOptions(query="aspirin fever", k=6, window=6), Deadline(5))
    assert not r.reranked and r.reranker == "" and "ltr" not in r.timings_ms
    assert "no reranker configured" in r.rerank_skipped_reason and "skipped: it needs the reranker" in \
        r.rerank_skipped_reason
    assert [h.first_stage_rank for h in r.hits] == sorted(h.first_stage_rank for h in r.hits)


def test_a_reranker_other_than_the_trained_one_is_flagged():
    model = _linear(("reranker", "length"), (1.0, 0.0))
    model.report["reranker"] = "ce@abc/cross-encoder-linear-score-fusion-w0.30"
    stage = LtrStage(model)
    assert stage.check_reranker("ce@abc/cross-encoder-linear-score-fusion-w0.30")
    assert not stage.check_reranker("ce@def/cross-encoder")
    assert stage.check_reranker("")  # not known yet: nothing to say
    assert LtrStage(_linear()).check_reranker("ce@def/cross-encoder")  # reads no reranker score


async def test_a_request_cutting_the_reranker_elsewhere_than_training_keeps_the_reranker_order():
    model = _linear(("reranker", "length"), (0.0, 1.0))
    model.report["cascade_depth"] = 0  # trained on reranker scores of the whole window
    core, _ = await _world(LtrStage(model))
    r = await core.search(SearchOptions(query="aspirin fever", k=6, window=6, rerank_depth=3), Deadline(5))
    assert r.reranked and r.reranker == "fake-reranker/overlap" and "ltr" not in r.timings_ms
    assert "skipped: it was trained on reranker scores of the whole window" in r.rerank_skipped_reason
    assert [h.rerank_score for h in r.hits] == sorted((h.rerank_score for h in r.hits), reverse=True)
    whole = await core.search(SearchOptions(query="aspirin fever", k=6, window=6, rerank_depth=6), Deadline(5))
    assert whole.reranker.endswith(LtrStage(model).label)  # rerank_depth = the window: the whole window, as trained


async def test_the_model_orders_only_the_depth_it_was_trained_at_and_the_rest_keep_the_reranker_order():
    model = _linear(("reranker", "length"), (0.0, 1.0))
    model.depth = 3  # trained on windows of 3; served on a window of 6
    core, _ = await _world(LtrStage(model))
    plain, _ = await _world(None)
    opts = SearchOptions(query="aspirin fever", k=6, window=6)
    r = await core.search(opts, Deadline(5))
    base = await plain.search(opts, Deadline(5))
    top, rest = r.hits[:3], r.hits[3:]
    assert {h.id for h in top} == {h.id for h in base.hits[:3]}  # the reranker's top 3, re-ordered by the model
    assert [len(h.text) for h in top] == sorted((len(h.text) for h in top), reverse=True)
    assert all(h.ltr_score is not None for h in top)
    assert [h.id for h in rest] == [h.id for h in base.hits[3:]] and all(h.ltr_score is None for h in rest)
    assert r.reranker.endswith(LtrStage(model).label)
