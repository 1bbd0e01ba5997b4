"""VectorStore: approximate recall vs exact on structured synthetic data, selectors, range, MRL, compaction."""

from __future__ import annotations

import numpy as np
import pytest
from faiss.contrib.datasets import SyntheticDataset

from winnow.services.index.vectors import VectorStore


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    ds = SyntheticDataset(32, 2000, 6000, 40, metric="IP", seed=1338)
    return _unit(ds.get_database()), _unit(ds.get_queries())


def tolerant_recall(base: np.ndarray, q: np.ndarray, got: np.ndarray, k: int) -> float:
    """Share of returned slots whose true score reaches the exact k-th score (ties count as hits)."""
    true = base @ q
    kth = np.sort(true)[-k]
    return float((true[got] >= kth - 1e-5).sum()) / k


@pytest.mark.parametrize(
    ("factory", "nprobe", "ef", "floor"),
    [("HNSW32,Flat", 0, 128, 0.95), ("IVF32,Flat", 8, 0, 0.9), ("Flat", 0, 0, 1.0)],
)
def test_recall_against_exact(data, factory, nprobe, ef, floor):
    base, queries = data
    store = VectorStore(32, factory, [], train_min=1000)
    store.add(base)
    assert store.index.is_trained
    recalls = []
    for q in queries:
        _, slots = store.search(q, 20, None, nprobe, ef, exact=False)
        recalls.append(tolerant_recall(base, q, slots, 20))
    assert np.mean(recalls) >= floor


def test_untrained_ivf_is_exact_until_trained(data):
    base, queries = data
    store = VectorStore(32, "IVF32,Flat", [], train_min=5000)
    store.add(base[:100])
    assert not store.index.is_trained
    _, slots = store.search(queries[0], 5, None, 1, 0, exact=False)
    assert tolerant_recall(base[:100], queries[0], slots, 5) == 1.0
    store.add(base[100:5000])
    assert store.index.is_trained and store.index.ntotal == 5000


def test_dead_slots_never_returned(data):
    base, queries = data
    store = VectorStore(32, "HNSW32,Flat", [])
    store.add(base[:2000])
    _, first = store.search(queries[0], 10, None, 0, 64, exact=False)
    store.kill(first[:5])
    _, again = store.search(queries[0], 10, None, 0, 64, exact=False)
    assert not set(first[:5].tolist()) & set(again.tolist())
    assert len(again) == 10


def test_selector_restricts_inside_search(data):
    base, queries = data
    store = VectorStore(32, "HNSW32,Flat", [])
    store.add(base[:3000])
    allowed = np.zeros(3000, bool)
    allowed[::3] = True  # a third of the shard: the graph search itself must skip the rest
    _, slots = store.search(queries[1], 10, allowed, 0, 128, exact=False)
    assert len(slots) == 10 and allowed[slots].all()
    _, exact = store.search(queries[1], 10, allowed, 0, 0, exact=True)
    assert allowed[exact].all()
    sub = base[:3000][allowed]
    true_kth = np.sort(sub @ queries[1])[-10]
    assert ((base[exact] @ queries[1]) >= true_kth - 1e-5).all()


def test_range_equals_brute_force(data):
    base, queries = data
    store = VectorStore(32, "HNSW32,Flat", [])
    store.add(base[:3000])
    store.kill(np.arange(0, 3000, 7))
    mask = store.live_mask().copy()
    for q in queries[:5]:
        true = base[:3000] @ q
        threshold = float(np.sort(true)[-50])
        scores, slots = store.range(q, threshold, mask)
        expect = set(np.flatnonzero((true >= threshold) & mask).tolist())
        assert set(slots.tolist()) == expect
        np.testing.assert_allclose(scores, true[slots], rtol=1e-5, atol=1e-6)


def test_coarse_sweep_uses_leading_dims(data):
    base, queries = data
    store = VectorStore(32, "Flat", [8])
    store.add(base[:1000])
    q = queries[2]
    mask = store.live_mask()
    for dim in (8, 16):  # cached and computed-on-the-fly coarse views agree with a direct computation
        _, slots = store.coarse_topk(q, 5, mask, dim)
        coarse = _unit(base[:1000, :dim]) @ (q[:dim] / np.linalg.norm(q[:dim]))
        assert set(slots.tolist()) == set(np.argsort(-coarse)[:5].tolist())


def test_compact_renumbers_and_keeps_vectors(data):
    base, _ = data
    store = VectorStore(32, "IVF16,Flat", [], train_min=1000)
    store.add(base[:2000])
    store.kill(np.arange(0, 2000, 2))
    fresh = store.compacted()
    assert fresh.n == fresh.n_live == 1000 and fresh.index.ntotal == 1000 and fresh.index.is_trained
    np.testing.assert_array_equal(fresh.vectors()[0], base[1])
    np.testing.assert_array_equal(fresh.vectors()[999], base[1999])
    assert store.n == 2000 and store.n_live == 1000  # the old store is untouched


def test_restore_reuses_saved_index(data):
    base, queries = data
    a = VectorStore(32, "HNSW32,Flat", [])
    a.add(base[:500])
    b = VectorStore(32, "HNSW32,Flat", [])
    b.restore(a.vectors().copy(), a.live_mask().copy(), a.index)
    assert b.index is a.index and b.n == 500
    assert np.array_equal(a.search(queries[0], 5, None, 0, 64, False)[1], b.search(queries[0], 5, None, 0, 64, False)[1])
