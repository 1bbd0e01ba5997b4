"""Bm25Index: lazy rebuilds, token cache, staleness window, masks."""

from __future__ import annotations

import numpy as np

from winnow.services.index.lexical import Bm25Index


def test_rebuilds_only_when_stale_and_tokenises_only_new_texts():
    texts = ["red apples grow", "green pears", "apples and pears"]
    live = np.ones(3, bool)
    bm = Bm25Index()
    bm.mark_added()
    assert bm.ensure_fresh(texts, live) > 0 and bm.ensure_fresh(texts, live) == 0.0
    assert set(bm.search("apple", 10, live)[1].tolist()) == {0, 2}
    cached = bm._tokens[0]
    texts.append("an apple pie")
    live = np.ones(4, bool)
    bm.mark_added()
    bm.ensure_fresh(texts, live)
    assert bm._tokens[0] is cached and bm.rebuilds == 2  # old slots were not re-tokenised
    assert set(bm.search("apple", 10, live)[1].tolist()) == {0, 2, 3}


def test_mask_excludes_dead_and_filtered_rows_without_rebuild():
    texts = ["apple one", "apple two", "apple three"]
    live = np.ones(3, bool)
    bm = Bm25Index()
    bm.mark_added()
    bm.ensure_fresh(texts, live)
    allowed = np.array([True, False, True])
    assert set(bm.search("apple", 10, allowed)[1].tolist()) == {0, 2}
    assert bm.search("the of and", 10, live)[1].size == 0
    assert bm.search("banana", 10, live)[1].size == 0


def test_staleness_window_and_dead_fraction():
    texts = [f"word{i} common" for i in range(10)]
    live = np.ones(10, bool)
    bm = Bm25Index(max_staleness_s=3600)
    bm.mark_added()
    bm.ensure_fresh(texts, live)
    texts.append("word10 common")
    bm.mark_added()
    assert bm.ensure_fresh(texts, np.ones(11, bool)) == 0.0  # inside the window: the old index serves
    live = np.ones(11, bool)
    live[:3] = False  # 3 of 10 indexed rows dead: more than a fifth
    assert bm.ensure_fresh(texts, live) > 0
    assert set(bm.search("common", 20, live)[1].tolist()) == set(range(3, 11))
