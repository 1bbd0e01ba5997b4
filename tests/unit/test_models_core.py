"""Pure model cores with the in-package fake encoder: MRL, MaxSim, RRF fusion, the token-vector LRU, loading
errors, device choice, and the embedder/reranker cores' validation and batching (no grpc, no real model)."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.common.errors import InvalidArgument
from winnow.models.encoder import FakeEncoder, mrl_truncate
from winnow.models.late_interaction import (
    LateInteractionScorer,
    TokenVectorCache,
    linear_fuse,
    linear_score_fuse,
    maxsim,
    rrf_fuse,
    text_key,
)
from winnow.models.loading import ModelLoadError, check_model_dir, choose_placement, default_model_dir
from winnow.models.scorer import Candidate
from winnow.services.embedder.core import EmbedderCore
from winnow.services.reranker.core import RerankerCore


def test_mrl_truncate_is_unit_length() -> None:
    v = np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32)
    out = mrl_truncate(v, 16)
    assert out.shape == (5, 16)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert np.allclose(out * np.linalg.norm(v[:, :16], axis=1, keepdims=True), v[:, :16], atol=1e-5)


def test_fake_encoder_dimensions_and_truncation() -> None:
    enc = FakeEncoder(dimension=64, max_seq_length=4)
    assert enc.allowed_dimensions == (8, 16, 32, 64)
    assert enc.check_dimension(0) == 64 and enc.check_dimension(16) == 16
    with pytest.raises(InvalidArgument, match="use 0 \\(full\\) or one of: 8, 16, 32, 64"):
        enc.check_dimension(12)
    pre = enc.prepare(["a b c", "a b c d e f"])
    assert [p.tokens for p in pre] == [3, 4] and [p.truncated for p in pre] == [False, True]
    v = enc.encode(["cats and dogs", "cats and dogs", "stock markets"], dimension=16)
    assert v.shape == (3, 16) and np.allclose(v[0], v[1])


def test_maxsim_matches_a_loop_per_document(monkeypatch) -> None:
    rng = np.random.default_rng(1)

    def unit(n):
        m = rng.standard_normal((n, 8)).astype(np.float32)
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    q, docs = unit(3), [unit(2), unit(7), unit(1)]
    got = maxsim(q, docs)
    want = [float((q @ d.T).max(axis=1).mean()) for d in docs]
    assert np.allclose(got, want, atol=1e-6)
    assert maxsim(q, []).shape == (0,)
    # stored fp16 matrices (mixed with fresh fp32 ones) score as their fp32 values
    half = [d.astype(np.float16) for d in docs]
    want16 = [float((q @ d.astype(np.float32).T).max(axis=1).mean()) for d in half]
    assert np.allclose(maxsim(q, [half[0], docs[1], half[2]]), [want16[0], want[1], want16[2]], atol=1e-6)
    from winnow.models import late_interaction

    monkeypatch.setattr(late_interaction, "_CHUNK_ROWS", 3)  # blocks that cut through documents: same scores
    assert np.allclose(maxsim(q, [half[0], docs[1], half[2]]), [want16[0], want[1], want16[2]], atol=1e-6)
    with pytest.raises(ValueError, match="at least one token"):
        maxsim(q, [docs[0], np.zeros((0, 8), dtype=np.float32)])


def test_rrf_fuse() -> None:
    # no first-stage evidence: own scores unchanged
    assert rrf_fuse([0.2, 0.9], [0, 0], 0.5, 60) == [0.2, 0.9]
    # weight 1: own order only; weight 0: first-stage order only
    own, fs = [0.1, 0.9, 0.5], [1, 3, 2]
    s1 = rrf_fuse(own, fs, 1.0, 60)
    assert sorted(range(3), key=lambda i: -s1[i]) == [1, 2, 0]
    s0 = rrf_fuse(own, fs, 0.0, 60)
    assert sorted(range(3), key=lambda i: -s0[i]) == [0, 2, 1]
    # unknown first-stage rank counts as last
    s = rrf_fuse([0.5, 0.5], [0, 1], 0.0, 60)
    assert s[1] > s[0]


def test_linear_fuse() -> None:
    assert linear_fuse([0.2, 0.9], [0, 0], 0.4, 60) == [0.2, 0.9]
    own, fs = [0.1, 0.9, 0.5], [1, 3, 2]
    s1 = linear_fuse(own, fs, 1.0, 60)
    assert sorted(range(3), key=lambda i: -s1[i]) == [1, 2, 0]
    s0 = linear_fuse(own, fs, 0.0, 60)
    assert sorted(range(3), key=lambda i: -s0[i]) == [0, 2, 1]
    # a large MaxSim margin overrides a one-place first-stage difference at w=0.4
    s = linear_fuse([0.1, 0.9, 0.1, 0.1], [1, 2, 3, 4], 0.4, 60)
    assert max(range(4), key=lambda i: s[i]) == 1
    with pytest.raises(ValueError, match="fusion must be"):
        LateInteractionScorer(FakeEncoder(), fusion="max")


def test_linear_score_fuse() -> None:
    # no first-stage ranks: own scores unchanged
    assert linear_score_fuse([0.2, 0.9], [0, 0], 0.4, 60, [0.0, 0.0]) == [0.2, 0.9]
    own, fs, sc = [0.1, 0.9, 0.5], [1, 3, 2], [2.0, -1.0, 1.5]
    s1 = linear_score_fuse(own, fs, 1.0, 60, sc)
    assert sorted(range(3), key=lambda i: -s1[i]) == [1, 2, 0]
    s0 = linear_score_fuse(own, fs, 0.0, 60, sc)
    assert sorted(range(3), key=lambda i: -s0[i]) == [0, 2, 1]
    # the score gap matters, not just the order: a near-tie at the top lets MaxSim decide, a wide gap does not
    near = linear_score_fuse([0.1, 0.9, 0.1, 0.1], [1, 2, 3, 4], 0.3, 60, [1.01, 1.0, -1.0, -1.0])
    wide = linear_score_fuse([0.1, 0.9, 0.1, 0.1], [1, 2, 3, 4], 0.3, 60, [5.0, 1.0, 0.9, 0.8])
    assert max(range(4), key=lambda i: near[i]) == 1 and max(range(4), key=lambda i: wide[i]) == 0
    # unknown rank gets the lowest known score
    s = linear_score_fuse([0.5, 0.5, 0.5], [0, 1, 2], 0.0, 60, [9.0, 2.0, 1.0])
    assert s[1] > s[2] == s[0]
    # scores missing or flat (a caller that sends only ranks): the rank-based linear fusion
    assert linear_score_fuse(own, fs, 0.4, 60, [0.0, 0.0, 0.0]) == linear_fuse(own, fs, 0.4, 60)
    assert linear_score_fuse(own, fs, 0.4, 60) == linear_fuse(own, fs, 0.4, 60)


def test_late_interaction_score_fusion_uses_first_stage_score() -> None:
    scorer = LateInteractionScorer(FakeEncoder(), fusion="linear-score", weight=0.0)
    assert scorer.name == "late-interaction-maxsim-linear-score-fusion"
    cands = [Candidate("1", "cats like fish", 2, 0.5), Candidate("2", "stock market news", 1, 0.9),
             Candidate("3", "dogs", 3, -2.0)]
    s = scorer.score("cats fish", cands)
    assert sorted(range(3), key=lambda i: -s[i]) == [1, 0, 2]  # w=0: the first-stage score order


def test_token_vector_cache_lru_by_bytes() -> None:
    cache = TokenVectorCache(max_bytes=3 * 4 * 8 * 2)  # three 4x8 fp16 matrices
    for i in range(4):
        cache.put(("d", str(i)), np.ones((4, 8)), truncated=False)
    assert len(cache) == 3 and cache.get(("d", "0")) is None
    assert cache.get(("d", "1")) is not None  # touch 1 so 2 is the oldest
    cache.put(("d", "4"), np.ones((4, 8)), truncated=True)
    assert cache.get(("d", "2")) is None and cache.get(("d", "4"))[1] is True
    assert text_key("a", "x") != text_key("a", "y")


def test_late_interaction_caches_documents() -> None:
    enc = FakeEncoder()
    scorer = LateInteractionScorer(enc, weight=1.0)
    cands = [Candidate("1", "cats like fish"), Candidate("2", "stock market news")]
    first = scorer.score("cats fish", cands)
    assert first[0] > first[1]
    calls = enc.calls
    again = scorer.score("cats fish", cands)  # docs and query cached: no forward pass
    assert enc.calls == calls and np.allclose(first, again, atol=1e-3)
    scorer.score("cats fish", [Candidate("1", "cats like fish, edited")])  # new text hash -> re-encode
    assert enc.calls > calls


def test_missing_model_dir_is_clear(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        check_model_dir(tmp_path / "nope")
    with pytest.raises(ModelLoadError, match="missing config.json"):
        check_model_dir(tmp_path)
    assert (default_model_dir() / "modules.json").is_file()


def test_device_choice(monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_placement("auto").device == "cpu" and choose_placement("auto").dtype == "float32"
    with pytest.raises(ModelLoadError, match="no CUDA device"):
        choose_placement("cuda")
    with pytest.raises(ModelLoadError, match="auto, cpu or cuda"):
        choose_placement("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    p = choose_placement("auto")
    assert (p.device, p.dtype) == ("cuda", "float16")


def test_offline_env_is_forced() -> None:
    import os

    import winnow.models  # noqa: F401

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


async def test_embedder_core_validates_and_embeds() -> None:
    core = EmbedderCore(FakeEncoder(), max_texts=3)
    try:
        for texts, kind, dim, needle in [
            ([], "document", 0, "texts is empty"),
            (["a", "b", "c", "d"], "document", 0, "limit is 3"),
            (["a", " \t"], "document", 0, "texts[1]"),
            (["a"], "image", 0, "kind must be"),
            (["a"], "query", 7, "dimension 7"),
        ]:
            with pytest.raises(InvalidArgument, match=needle.replace("[", "\\[")):
                await core.embed(texts, kind, dim)
        res = await core.embed(["cats", "dogs and cats"], "query", 32)
        assert res.vectors.shape == (2, 32) and res.tokens == [1, 3] and res.dimension == 32
        assert {"queue", "inference", "tokenize", "total"} <= set(res.timings_ms)
    finally:
        await core.close()


async def test_reranker_core_sorts_ties_by_first_stage() -> None:
    core = RerankerCore(LateInteractionScorer(FakeEncoder(), weight=0.5), max_candidates=4)
    try:
        cands = [Candidate("a", "cats", 2), Candidate("b", "cats", 1)]  # identical text: tie
        res = await core.rerank("cats", cands)
        assert [r.id for r in res.results] == ["b", "a"]
        with pytest.raises(InvalidArgument, match="top_n"):
            await core.rerank("cats", cands, top_n=-1)
        top = await core.rerank("cats", cands, top_n=1)
        assert len(top.results) == 1
    finally:
        await core.close()
