"""BM25 over the shard's texts with bm25s (English stopwords, PyStemmer English stemmer).

bm25s builds an immutable index, so this keeps it in step lazily: an upsert only marks the index stale, and the
next lexical search rebuilds it from the live texts (many writes between two searches cost one rebuild).
Tokenising (stopwords + stemming) is two thirds of a rebuild, so each slot's token ids are cached: a rebuild
tokenises only the texts added since the last one, then hands cached ids to bm25s's indexer. Deletes
and replacements need no rebuild to be correct: the search passes a weight mask of live (and filter-allowed) slots
into bm25s, so dead rows never score. The index is also rebuilt once a fifth of its rows are dead, so
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
        self._slots = np.zeros(0, np.int64)  # bm25 row -> slot
        self._vocab: dict[str, int] = {}  # grows only; words of dead documents just keep df 0
        self._tokens: dict[int, np.ndarray] = {}  # slot -> token ids (int32), filled lazily at rebuild
        self._built_version = -1
        self._built_at = 0.0
        self.version = 0  # bumped by every add: the index is stale when built_version != version
        self.rebuilds = 0

    def mark_added(self) -> None:
        """New texts exist; the next search rebuilds."""
        self.version += 1

    def _needs_rebuild(self, live: np.ndarray) -> bool:
        if self._too_many_dead(live):
            return True  # bound the drift of document frequencies after deletes
        if self._built_version == self.version:
            return False
        fresh_enough = time.monotonic() - self._built_at < self.max_staleness_s
        return self._retriever is None or not fresh_enough

    def _words(self, texts: list[str]) -> list[list[str]]:
        return bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, return_ids=False, show_progress=False)

    def ensure_fresh(self, texts: list[str], live: np.ndarray, wait: bool = True) -> float | None:
        """Rebuild if stale; returns milliseconds spent (0 when fresh). Caller holds the shard's read lock.
        wait=False: None instead of rebuilding, or of waiting for another thread's rebuild."""
        if not self._lock.acquire(blocking=wait):
            return None
        try:
            if not self._needs_rebuild(live):
                return 0.0
            if not wait:
                return None
            return self._rebuild(texts, live)
        finally:
            self._lock.release()

    def _rebuild(self, texts: list[str], live: np.ndarray) -> float:
        """Caller holds self._lock."""
        start = time.perf_counter()
        slots = np.flatnonzero(live).astype(np.int64)
        for dead in [s for s in self._tokens if s >= live.shape[0] or not live[s]]:
            del self._tokens[dead]
        new = [int(s) for s in slots if int(s) not in self._tokens]
        vocab = self._vocab
        for slot, words in zip(new, self._words([texts[s] for s in new])):
            self._tokens[slot] = np.fromiter((vocab.setdefault(w, len(vocab)) for w in words), np.int32)
        retriever = None
        if slots.shape[0]:
            ids = [self._tokens[int(s)].tolist() for s in slots]
            retriever = bm25s.BM25()
            retriever.index(bm25s.tokenization.Tokenized(ids=ids, vocab=dict(vocab)), create_empty_token=False,
                            show_progress=False)
        self._retriever, self._slots = retriever, slots
        self._built_version, self._built_at = self.version, time.monotonic()
        self.rebuilds += 1
        ms = (time.perf_counter() - start) * 1000
        log.debug("bm25 rebuilt", extra={"fields": {"docs": int(slots.shape[0]), "new": len(new), "ms": round(ms, 1)}})
        return ms

    def _too_many_dead(self, live: np.ndarray) -> bool:
        if self._slots.shape[0] == 0:
            return False
        in_range = self._slots[self._slots < live.shape[0]]
        dead = self._slots.shape[0] - int(live[in_range].sum())
        return dead * 5 > self._slots.shape[0]

    def search(self, query: str, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, slots) among rows whose slot is `allowed` (live and filter-matching); score > 0 only."""
        retriever, slots = self._retriever, self._slots
        empty = np.zeros(0, np.float32), np.zeros(0, np.int64)
        if retriever is None or slots.shape[0] == 0:
            return empty
        qids = [self._vocab[w] for w in self._words([query])[0] if w in self._vocab]
        if not qids:
            return empty  # only stopwords or words no document has
        in_range = slots < allowed.shape[0]
        weights = np.zeros(slots.shape[0], np.float32)
        weights[in_range] = allowed[slots[in_range]]
        # Scores over every row, then the top k here: bm25s' retrieve() around the same scoring adds a progress
        # bar object, list handling and a second sort per call (about a fifth of a shard's lexical time).
        scores = retriever.get_scores(qids, weight_mask=weights)
        kk = min(k, scores.shape[0])
        rows = np.argpartition(-scores, kk - 1)[:kk] if kk < scores.shape[0] else np.arange(scores.shape[0])
        rows = rows[np.lexsort((rows, -scores[rows]))]  # best first, ties by row (deterministic)
        keep = (scores[rows] > 0) & (weights[rows] > 0)
        rows = rows[keep]
        return scores[rows].astype(np.float32), slots[rows]
