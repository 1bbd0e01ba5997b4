"""BM25 over the shard's texts with bm25s (English stopwords, PyStemmer English stemmer).

bm25s builds an immutable index, so this keeps it in step lazily: an upsert only marks the index stale, and the
next lexical search rebuilds it from the live texts (many writes between two searches cost one rebuild). Deletes
and replacements need no rebuild to be correct: the search passes a weight mask of live (and filter-allowed) slots
into bm25s, so dead rows never score. A stale index is rebuilt anyway once a fifth of its rows are dead, so
document frequencies do not drift far. `max_staleness_s` > 0 trades freshness for fewer rebuilds under heavy
mixed load.
"""

from __future__ import annotations

import logging
import threading
import time

import bm25s
import numpy as np
import Stemmer

log = logging.getLogger(__name__)


class Bm25Index:
    """A bm25s index over a snapshot of the live texts, mapping its rows back to slots."""

    def __init__(self, max_staleness_s: float = 0.0) -> None:
        self.max_staleness_s = max_staleness_s
        self._stemmer = Stemmer.Stemmer("english")
        self._lock = threading.Lock()
        self._retriever: bm25s.BM25 | None = None
        self._tokenizer: bm25s.tokenization.Tokenizer | None = None
        self._slots = np.zeros(0, np.int64)  # bm25 row -> slot
        self._built_version = -1
        self._built_at = 0.0
        self.version = 0  # bumped by every add: the index is stale when built_version != version
        self.rebuilds = 0

    def mark_added(self) -> None:
        """New texts exist; the next search rebuilds."""
        self.version += 1

    def _stale(self, live: np.ndarray) -> bool:
        if self._built_version == self.version:
            return False
        if self._retriever is not None and self.max_staleness_s > 0:
            if time.monotonic() - self._built_at < self.max_staleness_s:
                return False
        return True

    def _too_many_dead(self, live: np.ndarray) -> bool:
        if self._slots.shape[0] == 0:
            return False
        in_range = self._slots[self._slots < live.shape[0]]
        dead = self._slots.shape[0] - int(live[in_range].sum())
        return dead * 5 > self._slots.shape[0]

    def ensure_fresh(self, texts: list[str], live: np.ndarray) -> float:
        """Rebuild if stale; returns milliseconds spent (0 when fresh). Caller holds the shard's read lock."""
        with self._lock:
            if not self._stale(live) and not (self._built_version != self.version and self._too_many_dead(live)):
                return 0.0
            start = time.perf_counter()
            slots = np.flatnonzero(live).astype(np.int64)
            tokenizer = bm25s.tokenization.Tokenizer(stemmer=self._stemmer, stopwords="en")
            retriever = None
            if slots.shape[0]:
                ids = tokenizer.tokenize([texts[s] for s in slots], update_vocab=True, return_as="ids", show_progress=False)
                retriever = bm25s.BM25()
                retriever.index(ids, show_progress=False)
            self._retriever, self._tokenizer, self._slots = retriever, tokenizer, slots
            self._built_version, self._built_at = self.version, time.monotonic()
            self.rebuilds += 1
            ms = (time.perf_counter() - start) * 1000
            log.debug("bm25 rebuilt", extra={"fields": {"docs": int(slots.shape[0]), "ms": round(ms, 1)}})
            return ms

    def search(self, query: str, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, slots) among rows whose slot is `allowed` (live and filter-matching); score > 0 only."""
        retriever, tokenizer, slots = self._retriever, self._tokenizer, self._slots
        if retriever is None or tokenizer is None or slots.shape[0] == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        q = tokenizer.tokenize([query], update_vocab=False, return_as="ids", show_progress=False)
        if not q or not any(t for t in q[0] if t != tokenizer.word_to_id.get("", -1)):
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        in_range = slots < allowed.shape[0]
        weights = np.zeros(slots.shape[0], np.float32)
        weights[in_range] = allowed[slots[in_range]]
        kk = min(k, slots.shape[0])
        rows, scores = retriever.retrieve(q, k=kk, show_progress=False, weight_mask=weights, n_threads=0)
        rows, scores = rows[0], scores[0]
        keep = (scores > 0) & (weights[rows] > 0)
        return scores[keep].astype(np.float32), slots[rows[keep]]
