from collections import Counter

from winnow.services.gateway import fusion, routing
from winnow.services.gateway.model import Candidate


def test_jump_hash_is_stable_and_balanced():
    ids = [f"doc-{i}" for i in range(20_000)]
    owners = [routing.shard_for(i, 4) for i in ids]
    assert owners == [routing.shard_for(i, 4) for i in ids]  # deterministic
    counts = Counter(owners)
    assert set(counts) == {0, 1, 2, 3}
    assert min(counts.values()) > 0.2 * len(ids)  # roughly even


def test_jump_hash_moves_few_ids_when_growing():
    ids = [f"doc-{i}" for i in range(10_000)]
    moved = sum(routing.shard_for(i, 4) != routing.shard_for(i, 5) for i in ids)
    assert 0.1 * len(ids) < moved < 0.3 * len(ids)  # about 1/5 move, not ~4/5 as with modulo


def test_group_by_shard_keeps_positions():
    ids = ["a", "b", "c", "d", "e"]
    groups = routing.group_by_shard(ids, 2)
    assert sorted(p for ps in groups.values() for p in ps) == list(range(5))


def test_merge_top_orders_by_score_then_id():
    a = [(0.9, "x", None), (0.5, "y", None)]
    b = [(0.9, "a", None), (0.7, "b", None)]
    assert [t[1] for t in fusion.merge_top([a, b], 3)] == ["a", "x", "b"]


def _c(i, dense=None, lexical=None):
    return Candidate(id=i, text=f"text {i}", dense_score=dense, lexical_score=lexical)


def test_rrf_hand_computed():
    dense = [_c("a", 0.9), _c("b", 0.8), _c("c", 0.7)]
    lexical = [_c("c", lexical=12.0), _c("a", lexical=10.0), _c("d", lexical=3.0)]
    fused = fusion.rrf(dense, lexical, k=60, window=10)
    scores = {c.id: c.first_stage_score for c in fused}
    assert abs(scores["a"] - 0.5 * (1 / 61 + 1 / 62)) < 1e-12  # dense_weight 0.5 = plain RRF, halved
    assert abs(scores["c"] - 0.5 * (1 / 63 + 1 / 61)) < 1e-12
    assert abs(scores["b"] - 0.5 / 62) < 1e-12
    assert [c.id for c in fused] == ["a", "c", "b", "d"]
    a = fused[0]
    assert (a.dense_rank, a.lexical_rank, a.first_stage_rank) == (1, 2, 1)
    d = fused[-1]
    assert (d.dense_rank, d.lexical_rank) == (0, 3)


def test_rrf_window_truncates_and_weights_shift_order():
    dense = [_c("a", 0.9), _c("b", 0.8)]
    lexical = [_c("b", lexical=5.0), _c("c", lexical=4.0)]
    assert len(fusion.rrf(dense, lexical, window=2)) == 2
    lex_heavy = fusion.rrf([_c("a", 0.9)], [_c("c", lexical=4.0)], dense_weight=0.1)
    assert lex_heavy[0].id == "c"


def test_convex_z_score_hand_computed():
    # dense scores 0.9, 0.7, 0.5 -> z = +1.2247, 0, -1.2247; BM25 10, 2 -> z = +1, -1
    dense = [_c("a", 0.9), _c("b", 0.7), _c("c", 0.5)]
    lexical = [_c("c", lexical=10.0), _c("d", lexical=2.0)]
    fused = fusion.convex(dense, lexical, alpha=0.5, window=10)
    z = 1.5 ** 0.5
    scores = {c.id: c.first_stage_score for c in fused}
    assert abs(scores["a"] - 0.5 * (z + -1)) < 1e-9      # missing from BM25: that list's lowest z
    assert abs(scores["b"] - 0.5 * (0 + -1)) < 1e-9
    assert abs(scores["c"] - 0.5 * (-z + 1)) < 1e-9
    assert abs(scores["d"] - 0.5 * (-z + -1)) < 1e-9      # missing from dense: the lowest dense z
    assert [c.id for c in fused] == ["a", "c", "b", "d"]
    assert [c.first_stage_rank for c in fused] == [1, 2, 3, 4]


def test_convex_alpha_one_is_the_dense_order_and_flat_lists_are_safe():
    dense = [_c("a", 0.9), _c("b", 0.8)]
    lexical = [_c("b", lexical=3.0), _c("c", lexical=3.0)]  # flat: std 0 -> all z = 0
    assert [c.id for c in fusion.convex(dense, lexical, alpha=1.0)][:2] == ["a", "b"]
    assert [c.id for c in fusion.convex(dense, [], alpha=0.5)] == ["a", "b"]


def test_single_list_sets_ranks():
    out = fusion.single_list([_c("a", lexical=3.0), _c("b", lexical=2.0)], 1, dense=False)
    assert [(c.id, c.lexical_rank, c.first_stage_rank, c.first_stage_score) for c in out] == [("a", 1, 1, 3.0)]
