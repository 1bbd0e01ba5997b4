"""The reranker's cascade: only the previous stage's top `cascade_depth` reach the (expensive) scorer."""

from __future__ import annotations

from collections.abc import Sequence

from winnow.models.encoder import FakeEncoder
from winnow.models.late_interaction import LateInteractionScorer
from winnow.models.loading import Placement
from winnow.models.scorer import Candidate, PreparedPair, Scorer
from winnow.services.reranker.core import RerankerCore


class LengthScorer(Scorer):
    """Scores a candidate by its text length, and records which candidates it was asked about."""

    name = "length"
    model_id = "length@0"
    placement = Placement("cpu", "float32")
    max_length = 512

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.ranks: list[int] = []

    def prepare(self, query: str, candidates: Sequence[Candidate]) -> list[PreparedPair]:
        self.seen += [c.id for c in candidates]
        self.ranks += [c.first_stage_rank for c in candidates]
        return [PreparedPair(len(c.text), 1, False) for c in candidates]

    def forward(self, pairs: list[PreparedPair]) -> list[float]:
        return [float(p.payload) for p in pairs]


def _cands(n: int) -> list[Candidate]:
    # first-stage rank i+1; longer text further down, so the scorer reverses the first stage
    return [Candidate(f"d{i}", "x" * (i + 1), i + 1, float(n - i)) for i in range(n)]


async def test_first_stage_cut_scores_only_the_head_and_keeps_the_tail_order() -> None:
    scorer = LengthScorer()
    core = RerankerCore(scorer, cascade_depth=3)
    try:
        res = await core.rerank("q", list(reversed(_cands(6))))  # request order is not first-stage order
        assert sorted(scorer.seen) == ["d0", "d1", "d2"] and sorted(scorer.ranks) == [1, 2, 3]
        assert [h.id for h in res.results] == ["d2", "d1", "d0", "d3", "d4", "d5"]
        scores = [h.score for h in res.results]
        assert scores == sorted(scores, reverse=True)
        assert [h.index for h in res.results][:3] == [3, 4, 5]  # positions in the request
        assert res.timings_ms["cascade_depth"] == 3 and res.scorer == "length-top3"
        assert len((await core.rerank("q", _cands(6), top_n=2)).results) == 2
    finally:
        await core.close()


async def test_small_requests_skip_the_cut() -> None:
    scorer = LengthScorer()
    core = RerankerCore(scorer, cascade_depth=10)
    try:
        res = await core.rerank("q", _cands(4))
        assert len(scorer.seen) == 4 and [h.id for h in res.results] == ["d3", "d2", "d1", "d0"]
    finally:
        await core.close()


async def test_cheap_stage_chooses_the_head() -> None:
    scorer = LengthScorer()
    cheap = LateInteractionScorer(FakeEncoder(), weight=1.0)  # MaxSim alone
    core = RerankerCore(scorer, cascade_depth=1, cheap=cheap)
    try:
        cands = [Candidate("a", "dogs bark", 1, 2.0), Candidate("b", "cats purr loudly", 2, 1.0)]
        res = await core.rerank("cats purr", cands)
        assert scorer.seen == ["b"] and [h.id for h in res.results] == ["b", "a"]
        assert "cheap" in res.timings_ms
    finally:
        await core.close()


async def test_a_request_depth_overrides_the_setting_and_names_the_cut() -> None:
    scorer = LengthScorer()
    core = RerankerCore(scorer)  # no cascade by setting
    try:
        res = await core.rerank("q", _cands(6), depth=2)
        assert sorted(scorer.seen) == ["d0", "d1"]
        assert [h.id for h in res.results] == ["d1", "d0", "d2", "d3", "d4", "d5"]
        assert res.scorer == "length-top2" and res.timings_ms["cascade_depth"] == 2
        scorer.seen.clear()
        assert (await core.rerank("q", _cands(6))).scorer == "length" and len(scorer.seen) == 6
    finally:
        await core.close()
