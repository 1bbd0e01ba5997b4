"""The LTR's features are the same in training and in serving: `winnow train ltr`'s path (FirstStage.candidates +
the scorer's served score) and the gateway's (SearchCore: shard lists, merge, convex fusion, rerank, then the LTR
stage) produce the same candidates, so the same feature rows and the same model scores.

Both sides run on the same parts: one exact dense index and the index's own `Bm25Index` behind a shard fake, a
hashing encoder as the embedder, and one scorer (word overlap fused with the first-stage score, as the
cross-encoder's `finish()` fuses) behind a reranker fake that sends what the gateway's reranker client sends.
"""

from __future__ import annotations

import asyncio
import json
import random

import numpy as np
import pytest

from winnow.common.deadline import Deadline
from winnow.models.encoder import FakeEncoder
from winnow.models.fusion import linear_score_fuse
from winnow.models.ltr import LtrModel
from winnow.models.ltr_features import BASE_FEATURES, feature_matrix
from winnow.models.scorer import Candidate as Pair, PreparedPair, Scorer
from winnow.models.loading import Placement
from winnow.services.gateway.cache import MemoryBackend, ResultCache
from winnow.services.gateway.ltr import LtrStage
from winnow.services.gateway.model import SearchOptions
from winnow.services.gateway.ports import Hit, ShardResult, ShardStats
from winnow.services.gateway.search import SearchCore
from winnow.train.first_stage import FirstStage
from winnow.train.ltr import served_reranker, window_candidates

WORDS = ("protein cell gene cancer vitamin immune brain heart blood drug virus tumor receptor insulin mutation "
         "therapy dose trial mice patients").split()
FEATURES = (*BASE_FEATURES, "meta:year")
WINDOW = 12


class OverlapScorer(Scorer):
    """Word overlap, fused with the first stage like the cross-encoder's finish() (w = 0.5)."""

    name, model_id, max_length = "overlap-fused", "overlap@1", 64
    placement = Placement("cpu", "float32")

    def prepare(self, query, candidates):
        words = set(query.split())
        return [PreparedPair(len(words & set(c.text.split())) + 0.001 * len(c.text), 1, False) for c in candidates]

    def forward(self, pairs):
        return [float(p.payload) for p in pairs]

    def finish(self, candidates, raw):
        return linear_score_fuse(raw, [c.first_stage_rank for c in candidates], 0.5, 100.0,
                                 [c.first_stage_score for c in candidates])


class Corpus:
    def __init__(self, n=60, seed=0):
        rng = random.Random(seed)
        self.ids = [f"doc{i}" for i in range(n)]
        self.texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30))) for _ in range(n)]
        self.meta = {d: json.dumps({"year": 1990 + rng.randint(0, 30)}) if i % 4 else "" for i, d in
                     enumerate(self.ids)}
        self.encoder = FakeEncoder(dimension=32, max_seq_length=64)
        self.fs = FirstStage(self.texts, self.encoder)


class ShardOverFirstStage:
    """One shard answering from the FirstStage's own vectors and BM25 index: exact inner product and the index's
    Bm25Index, each list cut to k as the gateway asks (the index shard's Flat index does the same)."""

    name = target = "shard-0"

    def __init__(self, corpus: Corpus):
        self.c = corpus

    async def search(self, q, timeout):
        fs, c = self.c.fs, self.c
        sims = fs.vectors @ q.vector
        dense = sorted(range(len(c.ids)), key=lambda r: (-sims[r], r))[: q.k]
        scores, slots = fs.bm25.search(q.query_text, q.lexical_k, fs._live)
        hit = lambda r, s: Hit(c.ids[r], float(s), c.texts[r], c.meta[c.ids[r]])  # noqa: E731
        lexical = sorted(zip(scores.tolist(), slots.tolist()), key=lambda t: (-t[0], t[1]))
        return ShardResult([hit(r, sims[r]) for r in dense], [hit(int(r), s) for s, r in lexical], 1)

    async def stats(self, timeout):
        return ShardStats(self.name, len(self.c.ids), 1)


class Embedder:
    def __init__(self, encoder):
        self.encoder = encoder

    async def embed(self, texts, *, query, timeout):
        return self.encoder.forward(self.encoder.prepare(texts, "query" if query else "document"))

    async def describe(self, timeout):
        return {"model": self.encoder.model_id}


class Reranker:
    """The reranker service's core answering the Rerank request the gateway's client builds
    (`convert.rerank_request_to_proto`: id, text, first-stage rank and score; scores back by index)."""

    def __init__(self, core):
        self.core = core

    async def rerank(self, query, candidates, timeout, depth=0):
        res = await self.core.rerank(query, [Pair(c.id, c.text, c.first_stage_rank, c.first_stage_score)
                                             for c in candidates], depth=depth)
        scores = [0.0] * len(candidates)
        for h in res.results:
            scores[h.index] = h.score
        return scores

    async def describe(self, timeout):
        return {"model": self.core.scorer.model_id, "scorer": self.core.scorer_name}


@pytest.mark.parametrize("cascade", [0, 5])
def test_training_and_serving_compute_the_same_features_for_the_same_candidates(cascade):
    corpus, scorer = Corpus(), OverlapScorer()
    queries = ["cancer gene therapy", "insulin dose in patients", "virus immune cell", "brain tumor mice trial"]
    # training runs its own reranker core (in its own event loop), as `winnow train ltr` does
    trained = window_candidates(corpus.fs, queries, corpus.ids, corpus.texts, WINDOW,
                                served_reranker(scorer, cascade), corpus.meta)
    asyncio.run(_serve_and_compare(corpus, scorer, cascade, queries, trained))


async def _serve_and_compare(corpus, scorer, cascade, queries, trained):
    rng = np.random.default_rng(0)
    model = LtrModel("linear", FEATURES, np.zeros(len(FEATURES)), np.ones(len(FEATURES)),
                     weights=rng.standard_normal(len(FEATURES)), depth=WINDOW)
    stage = LtrStage(model)
    reranker = served_reranker(scorer, cascade)
    reranker.batcher.start()
    core = SearchCore(Embedder(corpus.encoder), [ShardOverFirstStage(corpus)], Reranker(reranker),
                      ResultCache(MemoryBackend(), ttl_s=60), ltr=stage)
    await core.refresh_models()
    for query, train_cands in zip(queries, trained):
        served = await core.search(SearchOptions(query=query, k=WINDOW, window=WINDOW, no_cache=True), Deadline(5))
        assert served.reranked and served.reranker.endswith(stage.label)
        assert len(served.hits) == len(train_cands) == WINDOW
        by_id = lambda cands: sorted(cands, key=lambda c: c.id)  # noqa: E731
        a, b = by_id(train_cands), by_id(served.hits)
        assert [c.id for c in a] == [c.id for c in b]
        for x, y in zip(a, b):  # the evidence each side holds, field by field
            assert (x.first_stage_rank, x.dense_rank, x.lexical_rank, x.text, x.metadata_json) == \
                (y.first_stage_rank, y.dense_rank, y.lexical_rank, y.text, y.metadata_json)
            assert (x.dense_score is None) == (y.dense_score is None)
            assert (x.lexical_score is None) == (y.lexical_score is None)
        fa, fb = feature_matrix(a, FEATURES), feature_matrix(b, FEATURES)
        assert np.allclose(fa, fb, atol=1e-5), query
        assert np.allclose(model.score(a), [h.ltr_score for h in b], atol=1e-4)
        # the served order is the model's order over the training rows
        assert [h.id for h in served.hits] == [a[i].id for i in sorted(
            range(len(a)), key=lambda i: (-model.score(a)[i], a[i].first_stage_rank))]
        if cascade:  # the reranker scored its top 5 only: the rest sit below, in first-stage order
            assert served.reranker.startswith(f"overlap@1/overlap-fused-top{cascade}+")
            tail = sorted((c for c in a if c.first_stage_rank > cascade), key=lambda c: c.first_stage_rank)
            head_low = min(c.rerank_score for c in a if c.first_stage_rank <= cascade)
            assert all(c.rerank_score < head_low for c in tail)
            assert [c.rerank_score for c in tail] == sorted((c.rerank_score for c in tail), reverse=True)
    await reranker.close()
