"""IR metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from winnow.eval import metrics as m

INV_LOG2_3 = 1 / math.log2(3)  # discount at rank 2: 0.63093...


def test_graded_ndcg_hand_computed() -> None:
    rels = {"a": 2, "b": 1, "c": 0}
    # DCG = 0/log2(2) + 1/log2(3) + 2/log2(4) ; ideal = 2/log2(2) + 1/log2(3)
    expected = (INV_LOG2_3 + 1.0) / (2.0 + INV_LOG2_3)
    assert m.ndcg_at_k(["x", "b", "a"], rels, 10) == pytest.approx(expected)
    assert m.ndcg_at_k(["a", "b"], rels, 10) == pytest.approx(1.0)
    # cut at k=1: ideal is 2 (grade 2 at rank 1), retrieved gives 0
    assert m.ndcg_at_k(["b", "a"], rels, 1) == pytest.approx(1.0 / 2.0)


def test_ideal_comes_from_qrels_not_from_the_run() -> None:
    # One of two relevant docs retrieved at rank 1: DCG 1, ideal 1 + 1/log2(3).
    assert m.ndcg_at_k(["a"], {"a": 1, "b": 1}, 10) == pytest.approx(1.0 / (1.0 + INV_LOG2_3))


def test_negative_grades_count_as_zero_gain() -> None:
    assert m.ndcg_at_k(["bad", "a"], {"a": 1, "bad": -1}, 10) == pytest.approx(INV_LOG2_3)


def test_ties_broken_by_doc_id_ascending() -> None:
    scores = {"b": 1.0, "a": 1.0, "c": 0.5}
    assert m.ranked(scores) == ["a", "b", "c"]
    rels = {"b": 1}
    assert m.ndcg_at_k(m.ranked(scores), rels, 10) == pytest.approx(INV_LOG2_3)
    assert m.mrr_at_k(m.ranked(scores), rels, 10) == pytest.approx(0.5)
    # insertion order must not matter
    assert m.ranked({"a": 1.0, "b": 1.0, "c": 0.5}) == m.ranked(scores)


def test_sequence_run_is_kept_in_order() -> None:
    assert m.ranked(["z", "a"]) == ["z", "a"]


def test_mrr() -> None:
    rels = {"c": 1, "d": 1}
    assert m.mrr_at_k(["a", "b", "c", "d"], rels, 10) == pytest.approx(1 / 3)
    assert m.mrr_at_k(["a", "b", "c", "d"], rels, 2) == 0.0
    assert m.mrr_at_k(["d"], rels, 10) == 1.0


def test_recall_and_precision() -> None:
    rels = {"a": 1, "b": 1, "c": 1, "d": 1, "n": 0}
    ranking = ["a", "x", "b", "n"]
    assert m.recall_at_k(ranking, rels, 2) == pytest.approx(1 / 4)
    assert m.recall_at_k(ranking, rels, 3) == pytest.approx(2 / 4)
    assert m.recall_at_k(ranking, rels, 100) == pytest.approx(2 / 4)
    assert m.precision_at_k(ranking, rels, 2) == pytest.approx(1 / 2)
    assert m.precision_at_k(ranking, rels, 3) == pytest.approx(2 / 3)
    assert m.precision_at_k(ranking, rels, 10) == pytest.approx(2 / 10)  # divides by k, as trec_eval


def test_set_recall_precision_for_bulk() -> None:
    assert m.set_recall_precision({"a", "x", "y", "z"}, {"a": 1, "b": 1}) == (0.5, 0.25)
    assert m.set_recall_precision(set(), {"a": 1}) == (0.0, 0.0)


def test_queries_without_relevant_docs_are_skipped() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 0}, "q3": {}}
    run = {"q1": {"a": 0.9, "b": 0.1}, "q2": {"b": 1.0}}
    assert m.judged_queries(qrels) == ["q1"]
    result = m.evaluate(run, qrels, ks=(10,))
    assert result["ndcg@10"] == 1.0
    assert result["mrr@10"] == 1.0
    assert result["recall@10"] == 1.0


def test_judged_query_missing_from_run_scores_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    result = m.evaluate({"q1": ["a"]}, qrels, ks=(10,))
    assert result["ndcg@10"] == pytest.approx(0.5)
    assert result["recall@10"] == pytest.approx(0.5)


def test_per_query_keys() -> None:
    rows = m.per_query({"q": ["a"]}, {"q": {"a": 1}}, ks=(10, 80))
    assert set(rows["q"]) == {f"{name}@{k}" for name in ("ndcg", "mrr", "recall", "precision") for k in (10, 80)}
    assert m.mean_metrics({}) == {}
