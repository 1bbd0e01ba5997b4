"""The late-interaction scorer's persistent token-vector store: survives a reopen, cuts a torn tail, warms the
in-memory cache, and a scorer reopened on it encodes nothing it has seen."""

from __future__ import annotations

import numpy as np

from winnow.models.encoder import FakeEncoder
from winnow.models.late_interaction import LateInteractionScorer, TokenVectorCache, text_key
from winnow.models.scorer import Candidate
from winnow.models.token_store import TokenVectorStore


def _mat(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float16)


def test_reopen_reads_back_and_cuts_a_torn_tail(tmp_path):
    store = TokenVectorStore(tmp_path, "m@1")
    a, b = text_key("a", "text a"), text_key("b", "text b")
    store.put(a, _mat(3, 0), False)
    store.put(b, _mat(5, 1), True)
    store.close()
    with open(store.path, "ab") as fh:
        fh.write(b"WTV1\x05\x00garbage")  # a crash in the middle of a record
    again = TokenVectorStore(tmp_path, "m@1")
    assert len(again) == 2
    got, cut = again.get(b)
    assert cut and np.array_equal(got, _mat(5, 1))
    c = text_key("c", "text c")
    again.put(c, _mat(2, 2), False)  # appends after the cut tail, so it reads back too
    again.close()
    third = TokenVectorStore(tmp_path, "m@1")
    assert len(third) == 3 and np.array_equal(third.get(c)[0], _mat(2, 2))
    assert len(TokenVectorStore(tmp_path, "m@2")) == 0  # another model never sees these vectors


def test_warm_fills_the_cache_newest_first_within_budget(tmp_path):
    store = TokenVectorStore(tmp_path, "m@1")
    keys = [text_key(str(i), f"t{i}") for i in range(4)]
    for i, k in enumerate(keys):
        store.put(k, _mat(4, i), False)  # 64 bytes each
    cache = TokenVectorCache(max_bytes=130)
    assert store.warm(cache) == 2
    assert cache.get(keys[3]) is not None and cache.get(keys[2]) is not None and cache.get(keys[0]) is None


class CountingEncoder(FakeEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.encoded = 0

    def token_vectors(self, batch):
        self.encoded += len(batch)
        return super().token_vectors(batch)


def test_a_restarted_scorer_has_no_cold_cache(tmp_path):
    words = ["cells grow", "tumor cells divide", "heart rate", "blood cells and plasma", "gene expression"]
    cands = [Candidate(f"d{i}", w, i + 1, 1.0 / (i + 1)) for i, w in enumerate(words)]
    enc = CountingEncoder()
    first = LateInteractionScorer(enc, store=TokenVectorStore(tmp_path, enc.model_id))
    before = first.forward(first.prepare("cells", cands))
    first.close()
    assert enc.encoded == 6  # 5 documents + the query
    enc2 = CountingEncoder()
    second = LateInteractionScorer(enc2, store=TokenVectorStore(tmp_path, enc2.model_id))
    assert len(second.cache) == 5  # warmed at start
    assert np.allclose(second.forward(second.prepare("cells", cands)), before, atol=2e-3)
    assert enc2.encoded == 1  # only the query
