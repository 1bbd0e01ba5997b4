"""`winnow train reranker` input handling: judgments sources, their errors, pseudo-queries, negatives' guards.

No model is loaded here; the training run itself is in tests/integration/test_train_reranker.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from winnow.eval.beir import Document
from winnow.train.first_stage import Ranked
from winnow.train.judgments import TrainInputError, from_file, from_split, load_dataset_corpus
from winnow.train.reranker import choose_weight, mine_pool, split_holdout
from winnow.train.self_supervised import FULL_VIEW, TITLE_VIEW, guarded_pool, make_pseudo_queries, pseudo_query


def _beir(root: Path, qrels: str | None = "q1\td1\t1\nq2\td2\t1\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    docs = [{"_id": f"d{i}", "title": f"Title {i}", "text": f"body of document {i}"} for i in range(1, 4)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text('{"_id": "q1", "text": "first"}\n{"_id": "q2", "text": "second"}\n')
    if qrels is not None:
        (root / "qrels").mkdir(exist_ok=True)
        (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    return root


def test_split_loads_judged_queries(tmp_path):
    root = _beir(tmp_path / "ds", "q1\td1\t1\nq1\td3\t0\nq2\td2\t2\n")
    queries = from_split(root, "train", load_dataset_corpus(root))
    assert [(q.id, q.text, q.positives, q.negatives) for q in queries] == [
        ("q1", "first", {"d1": 1}, {"d3"}), ("q2", "second", {"d2": 2}, set())]


def test_missing_split_names_the_available_ones(tmp_path):
    root = _beir(tmp_path / "ds")
    with pytest.raises(TrainInputError, match=r"no split 'dev'.*available: train"):
        from_split(root, "dev", load_dataset_corpus(root))


def test_missing_dataset_and_empty_split(tmp_path):
    with pytest.raises(TrainInputError, match="not found"):
        load_dataset_corpus(tmp_path / "nope")
    root = _beir(tmp_path / "ds", "")
    with pytest.raises(TrainInputError, match="no judgments"):
        from_split(root, "train", load_dataset_corpus(root))
    root = _beir(tmp_path / "ds2", "q1\td1\t0\n")
    with pytest.raises(TrainInputError, match="no query has a relevant"):
        from_split(root, "train", load_dataset_corpus(root))


def test_judgments_file_jsonl_and_tsv(tmp_path):
    root = _beir(tmp_path / "ds", None)
    corpus = load_dataset_corpus(root)
    f = tmp_path / "j.jsonl"
    f.write_text('{"query": "free text", "doc_id": "d2", "relevance": 1}\n'
                 '{"query_id": "q1", "doc_id": "d1", "relevance": 1}\n\n')
    got = {q.text: q.positives for q in from_file(f, root, corpus)}
    assert got == {"free text": {"d2": 1}, "first": {"d1": 1}}
    t = tmp_path / "j.tsv"
    t.write_text("q2\td3\t1\n")
    assert [q.positives for q in from_file(t, root, corpus)] == [{"d3": 1}]


@pytest.mark.parametrize("content, message", [
    ("", "empty"),
    ("\n  \n", "empty"),
    ('{"query": "x", "doc_id": "d1"\n', r"j\.jsonl:1: invalid JSON"),
    ('{"query": "x", "doc_id": "d1", "relevance": 1}\n[1]\n', r":2: expected a JSON object"),
    ('{"query": "x", "relevance": 1}\n', 'missing or invalid "doc_id"'),
    ('{"query": "x", "doc_id": "d1", "relevance": "yes"}\n', '"relevance" must be an integer'),
    ('{"doc_id": "d1", "relevance": 1}\n', 'needs "query"'),
    ('{"query_id": "q9", "doc_id": "d1", "relevance": 1}\n', "not in the dataset's queries file"),
    ('{"query": "x", "doc_id": "nope", "relevance": 1}\n', "no query has a relevant"),
])
def test_malformed_judgments_are_clear_errors(tmp_path, content, message):
    root = _beir(tmp_path / "ds", None)
    f = tmp_path / "j.jsonl"
    f.write_text(content)
    with pytest.raises(TrainInputError, match=message):
        from_file(f, root, load_dataset_corpus(root))


def test_missing_judgments_file(tmp_path):
    root = _beir(tmp_path / "ds", None)
    with pytest.raises(TrainInputError, match="not found"):
        from_file(tmp_path / "none.jsonl", root, load_dataset_corpus(root))


def test_mined_pool_skips_positives_and_guards_false_negatives():
    hits = [Ranked(0, 3.0, 0.90), Ranked(5, 2.0, 0.89), Ranked(6, 1.0, 0.50), Ranked(7, 0.5, 0.40)]
    # row 0 is the positive; row 5 is about as close as it (>= 0.95 x 0.9): a likely unjudged relevant document
    assert mine_pool(hits, {0}, {9}, pos_dense=0.9, depth=10, guard=0.95) == [9, 6, 7]
    assert mine_pool(hits, {0}, set(), pos_dense=0.9, depth=3, guard=0.95) == [6]


def test_holdout_is_deterministic_and_bounded():
    qs = list(range(20))
    a, b = split_holdout(qs, 100, seed=3), split_holdout(qs, 100, seed=3)
    assert a == b and len(a[1]) == 4 and sorted(a[0] + a[1]) == qs


def test_choose_weight_prefers_the_first_stage_on_ties():
    ids = ["a", "b", "c"]
    fs = np.array([3.0, 2.0, 1.0])
    # the cross-encoder puts the only relevant doc ("c") first: w = 1 wins
    best = choose_weight([({"c": 1}, ids, np.array([0.0, 0.0, 5.0]), fs)])
    assert best["fusion_weight"] > 0.5 and best["first_stage_ndcg@10"] < best["fused_ndcg@10"] == 1.0
    # the cross-encoder adds nothing: w = 0 (trust the first stage)
    flat = choose_weight([({"a": 1}, ids, np.array([1.0, 1.0, 1.0]), fs)])
    assert flat["fusion_weight"] == 0.0


def test_choose_weight_also_chooses_the_cascade_depth():
    ids = [f"d{i}" for i in range(40)]
    fs = np.linspace(2.0, 1.0, 40)
    # Relevant docs at first-stage ranks 2 and 12 (both inside the top 20). The cross-encoder finds them, but it
    # also loves ranks 25-39 (junk the first stage was right to put low): scoring the top 20 only is best.
    ce = np.zeros(40)
    ce[[1, 11]] = 3.0
    ce[25:] = 5.0
    out = choose_weight([({"d1": 1, "d11": 1}, ids, ce, fs)])
    assert out["cascade_depth"] == 20 and out["fused_ndcg@10"] == 1.0  # ties go to the cheaper depth
    assert set(out["ndcg@10_by_depth"]) == {"10", "20", "30", "40"}
    # Reading every candidate is best when the cross-encoder is right everywhere: depth 0 (= all).
    good = np.zeros(40)
    good[[1, 33]] = 3.0
    assert choose_weight([({"d1": 1, "d33": 1}, ids, good, fs)])["cascade_depth"] == 0


def test_the_served_cascade_depth_comes_from_the_setting_else_the_manifest():
    from winnow.models.trained import served_cascade_depth

    assert served_cascade_depth({"cascade_depth": 30}, -1) == 30
    assert served_cascade_depth({"cascade_depth": 30}, 0) == 0 and served_cascade_depth({}, 12) == 12
    assert served_cascade_depth({}, -1) == 0 and served_cascade_depth({"cascade_depth": "x"}, -1) == 0


def test_pseudo_queries_title_sentence_span():
    rng = random.Random(0)
    body = "Alpha beta gamma delta epsilon. Zeta eta theta iota kappa lambda. Mu nu xi omicron pi rho sigma."
    kinds = {pseudo_query(0, "A short title here", body, random.Random(s)).kind for s in range(10)}
    assert kinds == {"title", "sentence"}
    pq = pseudo_query(0, "", body, rng)  # no title: a sentence, taken out of the positive
    assert pq.kind == "sentence" and pq.view == FULL_VIEW and pq.query not in pq.positive
    words = " ".join(f"w{i}" for i in range(40))  # no punctuation at all: a span
    sp = pseudo_query(1, "", words, rng)
    assert sp.kind == "span" and 4 <= len(sp.query.split()) <= 24
    assert len(sp.positive.split()) + len(sp.query.split()) == 40
    assert pseudo_query(2, "", "too short to cut", rng) is None
    t = pseudo_query(3, "A long enough title", " ".join(["word"] * 12), random.Random(1))
    assert t is None or t.kind != "title" or (t.view == TITLE_VIEW and t.positive == " ".join(["word"] * 12))


def test_make_pseudo_queries_is_deterministic_and_skips_short_docs():
    titles = ["", "Some title words"] * 10
    bodies = ["tiny", "One sentence is here now. Another sentence follows it here. And a third one too."] * 10
    a = make_pseudo_queries(titles, bodies, 50, seed=1)
    assert a == make_pseudo_queries(titles, bodies, 50, seed=1)
    assert len(a) == 10 and all(p.row % 2 == 1 for p in a)


def test_guarded_pool_drops_source_duplicates_and_verbatim_copies():
    from winnow.train.self_supervised import PseudoQuery

    vecs = np.eye(4, dtype=np.float32)
    vecs[1] = vecs[0]  # row 1 is a near-duplicate of the source (row 0)
    q = np.array([1.0, 0.0, 0.3, 0.3], dtype=np.float32)
    q /= np.linalg.norm(q)
    pq = PseudoQuery(0, "sentence", "the exact claim", "rest", FULL_VIEW)
    shown = ["src", "dup", "contains The Exact  claim verbatim", "fine"]
    hits = [Ranked(r, 1.0 - r / 10, float(vecs[r] @ q)) for r in range(4)]
    assert guarded_pool(pq, hits, vecs, q, shown, depth=10, guard=0.95) == [3]
