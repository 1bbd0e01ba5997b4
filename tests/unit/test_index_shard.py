"""Shard core: upsert/delete/get semantics, search modes, filters, BM25 kept in step, and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from winnow.common.errors import FailedPrecondition, InvalidArgument
from winnow.services.index.model import Doc, FilterTerm, RangeQuery, SearchQuery
from winnow.services.index.settings import IndexSettings
from winnow.services.index.shard import Shard

DIM = 16


def make_shard(tmp_path, **overrides) -> Shard:
    settings = IndexSettings(data_dir=str(tmp_path / "shard"), dim=DIM, fsync=False, coarse_dims=[4], **overrides)
    shard = Shard(settings.shard_config())
    shard.open()
    return shard


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def doc(i: int, text: str = "", **meta) -> Doc:
    return Doc(f"d{i}", vec(i), text or f"document {i}", json.dumps(meta or {"n": i}))


@pytest.fixture
def shard(tmp_path):
    s = make_shard(tmp_path)
    yield s
    s.close()


def test_upsert_get_replace_delete(shard):
    r = shard.upsert([doc(i) for i in range(10)])
    assert (r.count, r.generation) == (10, 1)
    found, missing = shard.get(["d3", "nope"])
    assert [h.id for h in found] == ["d3"] and missing == ["nope"]
    assert found[0].text == "document 3" and json.loads(found[0].metadata_json) == {"n": 3}

    r = shard.upsert([Doc("d3", vec(100), "replaced", "{}")])
    assert r.generation == 2 and shard.stats().count == 10
    assert shard.get(["d3"])[0][0].text == "replaced"
    top = shard.search(SearchQuery(vec(100), 1)).dense
    assert top[0].id == "d3" and top[0].score == pytest.approx(1.0, abs=1e-5)
    assert all(h.id != "d3" for h in shard.search(SearchQuery(vec(3), 10)).dense[:1])

    assert shard.delete(["d3", "d3", "missing"]).count == 1
    again = shard.delete(["d3"])
    assert again.count == 0 and again.generation == 4  # idempotent, still a write
    assert shard.stats().count == 9
    assert "d3" not in {h.id for h in shard.search(SearchQuery(vec(100), 9)).dense}


def test_duplicate_ids_in_one_batch_last_wins(shard):
    shard.upsert([Doc("a", vec(1), "first", "{}"), Doc("a", vec(2), "second", "{}")])
    assert shard.stats().count == 1
    assert shard.get(["a"])[0][0].text == "second"


def test_filters_inside_search(shard):
    shard.upsert([doc(i, colour="red" if i % 10 == 0 else "blue", even=i % 2 == 0, n=i) for i in range(200)])
    q = SearchQuery(vec(5), 5, filters=[FilterTerm("colour", "red")], include_payloads=True)
    hits = shard.search(q).dense
    assert len(hits) == 5 and all(json.loads(h.metadata_json)["colour"] == "red" for h in hits)
    both = shard.search(SearchQuery(vec(5), 50, filters=[FilterTerm("colour", "red"), FilterTerm("even", True)]))
    assert len(both.dense) == 20  # every red id is a multiple of 10, so even
    assert shard.search(SearchQuery(vec(5), 3, filters=[FilterTerm("n", 7.0)])).dense[0].id == "d7"
    assert shard.search(SearchQuery(vec(5), 3, filters=[FilterTerm("even", 1.0)])).dense == []  # true != 1
    assert shard.search(SearchQuery(vec(5), 3, filters=[FilterTerm("absent", "x")])).dense == []
    pages = list(shard.range_search(RangeQuery(vec(5), -1.0, filters=[FilterTerm("colour", "red")])))
    assert pages[0].total == 20


def test_large_filter_uses_index_with_selector(tmp_path):
    shard = make_shard(tmp_path, exact_filter_max=0, exact_filter_fraction=0.0)
    shard.upsert([doc(i, half=i % 2) for i in range(400)])
    hits = shard.search(SearchQuery(vec(1), 20, filters=[FilterTerm("half", 1.0)])).dense
    assert len(hits) == 20 and all(int(h.id[1:]) % 2 == 1 for h in hits)
    shard.close()


def test_lexical_follows_writes(shard):
    shard.upsert([doc(1, "the quick brown fox"), doc(2, "lazy dogs sleeping"), doc(3, "a fox in the henhouse")])
    lex = shard.search(SearchQuery(None, 0, text="foxes", lexical_k=10)).lexical
    assert {h.id for h in lex} == {"d1", "d3"}
    shard.delete(["d1"])
    assert {h.id for h in shard.search(SearchQuery(None, 0, text="fox", lexical_k=10)).lexical} == {"d3"}
    shard.upsert([Doc("d2", vec(2), "a sleepy fox", "{}")])
    lex = shard.search(SearchQuery(None, 0, text="fox", lexical_k=10)).lexical
    assert {h.id for h in lex} == {"d2", "d3"}
    assert shard.search(SearchQuery(None, 0, text="the and of", lexical_k=5)).lexical == []
    assert shard.search(SearchQuery(None, 0, text="zebra", lexical_k=5)).lexical == []


def test_a_search_that_must_not_wait_says_so_instead_of_blocking(shard):
    """wait=False (the event loop's fast path) never blocks: a write holding or awaiting the lock, or a BM25
    rebuild due, gives None; the same search with wait=True (on a thread) then answers in full."""
    import threading

    shard.upsert([doc(1, "the quick brown fox"), doc(2, "lazy dogs sleeping")])
    q = SearchQuery(vec(1), 2, text="fox", lexical_k=2)
    first = shard.search(q, wait=False)
    assert first is None  # BM25 not built since the writes: a rebuild is due
    full = shard.search(q)
    assert [h.id for h in full.lexical] == ["d1"] and "bm25_rebuild" in full.timings_ms
    fast = shard.search(q, wait=False)
    assert fast is not None and [h.id for h in fast.dense] == [h.id for h in full.dense] and not fast.timings_ms.get(
        "bm25_rebuild")
    assert shard.search(SearchQuery(vec(2), 1), wait=False).dense[0].id == "d2"  # dense alone: no BM25 involved
    holding, release = threading.Event(), threading.Event()

    def writer():
        with shard._rw.write():
            holding.set()
            release.wait(5)

    t = threading.Thread(target=writer)
    t.start()
    assert holding.wait(5)
    try:
        assert shard.search(SearchQuery(vec(2), 1), wait=False) is None  # a write holds the lock: no waiting
    finally:
        release.set()
        t.join()
    assert shard.search(SearchQuery(vec(2), 1), wait=False).dense[0].id == "d2"


def test_hybrid_with_filter(shard):
    shard.upsert([doc(1, "fox one", tag="a"), doc(2, "fox two", tag="b")])
    r = shard.search(SearchQuery(vec(1), 2, text="fox", filters=[FilterTerm("tag", "b")], include_payloads=True))
    assert [h.id for h in r.dense] == ["d2"] and [h.id for h in r.lexical] == ["d2"]
    assert r.lexical[0].text == "fox two" and r.generation == 1


def test_range_pages_and_cap(shard):
    shard.upsert([doc(i) for i in range(100)])
    pages = list(shard.range_search(RangeQuery(vec(0), -1.0, page_size=30)))
    assert [p.page for p in pages] == [0, 1, 2, 3] and [p.last for p in pages] == [False, False, False, True]
    scores = [h.score for p in pages for h in p.hits]
    assert len(scores) == 100 == pages[0].total and scores == sorted(scores, reverse=True)
    capped = list(shard.range_search(RangeQuery(vec(0), -1.0, page_size=30, max_results=45)))
    assert sum(len(p.hits) for p in capped) == 45 and capped[0].total == 100
    empty = list(shard.range_search(RangeQuery(vec(0), 1.0 - 1e-9)))
    assert len(empty) == 1 and empty[0].last and empty[0].hits[0].id == "d0"


def test_mrl_coarse_to_fine(shard):
    shard.upsert([doc(i) for i in range(300)])
    fine = shard.search(SearchQuery(vec(7), 5)).dense
    coarse = shard.search(SearchQuery(vec(7), 5, coarse_dim=4, coarse_candidates=300)).dense
    assert [h.id for h in coarse] == [h.id for h in fine]  # every survivor refined: same as exact
    assert shard.search(SearchQuery(vec(7), 5, coarse_dim=DIM)).dense == fine  # full dimension: no sweep
    small = shard.search(SearchQuery(vec(7), 5, coarse_dim=4)).dense
    assert small[0].id == "d7" and len(small) == 5
    r = list(shard.range_search(RangeQuery(vec(7), 0.5, coarse_dim=8)))
    exact = list(shard.range_search(RangeQuery(vec(7), 0.5)))
    assert {h.id for h in r[0].hits} <= {h.id for h in exact[0].hits}
    assert all(h.score >= 0.5 for h in r[0].hits)


def test_ivf_trains_on_demand(tmp_path):
    shard = make_shard(tmp_path, index_factory="IVF4,Flat", train_min_vectors=10_000)
    shard.upsert([doc(i) for i in range(200)])
    assert not shard.stats().trained
    assert shard.search(SearchQuery(vec(3), 1)).dense[0].id == "d3"  # exact until trained
    trained, gen = shard.train()
    assert trained and gen == 1 and shard.stats().trained  # training is local: no log message, same generation
    assert shard.search(SearchQuery(vec(3), 1, nprobe=4)).dense[0].id == "d3"
    shard.close()


def test_train_too_few_vectors_is_failed_precondition(tmp_path):
    shard = make_shard(tmp_path, index_factory="IVF64,Flat", train_min_vectors=10_000)
    shard.upsert([doc(i) for i in range(10)])
    with pytest.raises(FailedPrecondition):
        shard.train()
    assert shard.stats().generation == 1
    shard.close()


BAD_DOCS = [
    (Doc("x", np.ones(DIM + 1, np.float32), "", "{}"), "dimension"),
    (Doc("x", np.full(DIM, np.nan, np.float32), "", "{}"), "NaN"),
    (Doc("x", np.array([np.inf] + [0.0] * (DIM - 1), np.float32), "", "{}"), "NaN or infinity"),
    (Doc("x", np.zeros(DIM, np.float32), "", "{}"), "zeros"),
    (Doc("", vec(1), "", "{}"), "empty"),
    (Doc("x", vec(1), "", "[1, 2]"), "JSON object"),
    (Doc("x", vec(1), "", "{not json"), "not valid JSON"),
    (Doc("x", vec(1), "y" * 70_000, "{}"), "payload_max_bytes"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_DOCS)
def test_bad_documents_rejected_whole_batch(shard, bad, message):
    shard.upsert([doc(1)])
    with pytest.raises(InvalidArgument, match=message):
        shard.upsert([doc(2), bad])
    assert shard.stats().count == 1 and shard.stats().generation == 1 and shard.get(["d2"])[1] == ["d2"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (SearchQuery(None, 5), "nothing to search"),
        (SearchQuery(vec(1), 0), "at least 1"),
        (SearchQuery(vec(1), 10_001), "max_k"),
        (SearchQuery(np.ones(3, np.float32), 5), "dimension"),
        (SearchQuery(np.full(DIM, np.nan, np.float32), 5), "NaN"),
        (SearchQuery(vec(1), 5, coarse_dim=DIM + 1), "coarse_dim"),
        (SearchQuery(vec(1), 5, coarse_dim=4, coarse_candidates=2), "coarse_candidates"),
        (SearchQuery(None, 0, text="x", lexical_k=0), "lexical_k"),
        (SearchQuery(vec(1), 5, filters=[FilterTerm("f", [1])]), "string, number or bool"),  # type: ignore[list-item]
        (SearchQuery(vec(1), 5, filters=[FilterTerm("", "a")]), "field"),
    ],
)
def test_bad_searches(shard, query, message):
    shard.upsert([doc(1)])
    with pytest.raises(InvalidArgument, match=message):
        shard.search(query)


@pytest.mark.parametrize("threshold", [1.5, -1.01, float("nan")])
def test_bad_thresholds(shard, threshold):
    with pytest.raises(InvalidArgument, match=r"\[-1, 1\]"):
        list(shard.range_search(RangeQuery(vec(1), threshold)))


def test_bad_page_size_and_delete_id(shard):
    with pytest.raises(InvalidArgument, match="page_size"):
        list(shard.range_search(RangeQuery(vec(1), 0.0, page_size=10_001)))
    with pytest.raises(InvalidArgument, match="empty"):
        shard.delete(["ok", ""])
    assert shard.stats().generation == 0


def test_not_loaded_is_unavailable(tmp_path):
    from winnow.common.errors import Unavailable

    shard = Shard(IndexSettings(data_dir=str(tmp_path / "s"), dim=DIM, fsync=False).shard_config())
    with pytest.raises(Unavailable, match="loading"):
        shard.upsert([doc(1)])
    with pytest.raises(Unavailable):
        shard.search(SearchQuery(vec(1), 1))
    shard.open()
    shard.upsert([doc(1)])
    shard.close()
    with pytest.raises(Unavailable):
        shard.get(["d1"])


def _rec(op, i, seq, **kw):
    from winnow.log import codec

    if op == "up":
        return codec.LogRecord(codec.OP_UPSERT, f"d{i}", vec(i), kw.get("text", f"document {i}"), "{}", seq)
    return codec.LogRecord(codec.OP_DELETE, f"d{i}", seq=seq)


def test_apply_follows_the_log_and_generation_is_the_applied_sequence(tmp_path):
    shard = make_shard(tmp_path)
    res = shard.apply([_rec("up", 1, 5), _rec("up", 2, 9), _rec("del", 1, 12), _rec("up", 3, 13)])
    assert shard.generation == 13 and res.generation == 13
    assert shard.get(["d1", "d2", "d3"])[1] == ["d1"]
    shard.close()
    again = make_shard(tmp_path)  # the snapshot written at close records the applied sequence
    assert again.generation == 13 and again.state.count == 2
    again.close()


def test_apply_skips_an_invalid_message_instead_of_stopping(tmp_path):
    from winnow.log import codec

    shard = make_shard(tmp_path)
    bad = codec.LogRecord(codec.OP_UPSERT, "bad", np.ones(DIM + 1, np.float32), "x", "{}", 2)
    shard.apply([_rec("up", 1, 1), bad, _rec("up", 2, 3)])
    assert shard.generation == 3 and shard.state.count == 2 and shard.skipped == 1
    shard.close()


def test_reset_forgets_state_and_snapshots(tmp_path):
    shard = make_shard(tmp_path)
    shard.apply([_rec("up", 1, 1)])
    shard.snapshot_now()
    shard.reset()
    assert shard.generation == 0 and shard.state.count == 0 and not list((tmp_path / "shard").glob("snap-*"))
    shard.close()
