"""The index shard core (no grpc): validated writes made durable before they apply, and the search modes.

Write path (one writer at a time): validate -> append the record to the log and fsync -> apply under the write
lock -> bump the generation -> maybe snapshot. Searches take the read lock, so they see either all of a write or
none of it. Blocking calls: run them in an executor, never on the event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from winnow.common import limits
from winnow.common.errors import Internal, InvalidArgument, Unavailable
from winnow.services.index import snapshot, validate, wal
from winnow.services.index.lexical import Bm25Index
from winnow.services.index.model import (
    Doc, ShardConfig, FilterTerm, Hit, RangePage, RangeQuery, SearchQuery, ShardResult, ShardStats, WriteResult,
)
from winnow.services.index.rwlock import RWLock
from winnow.services.index.state import ShardState
from winnow.services.index.vectors import VectorStore

log = logging.getLogger(__name__)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


class Shard:
    """One shard. `open()` loads the latest snapshot and replays the log; `close()` snapshots and closes."""

    def __init__(self, config: ShardConfig) -> None:
        self.s = config
        self.data_dir = Path(config.data_dir)
        self.state = self._empty_state()
        self.generation = 0
        self._rw = RWLock()
        self._write_mutex = threading.Lock()
        self._wal = wal.WriteAheadLog(self.data_dir, fsync=config.fsync)
        self._since_snapshot = 0
        self.loaded = False

    def _empty_state(self) -> ShardState:
        s = self.s
        vectors = VectorStore(s.dim, s.index_factory, s.coarse_dims, s.train_min_vectors, use_gpu=s.use_gpu)
        return ShardState(vectors, Bm25Index(s.bm25_max_staleness_s))

    # ---- lifecycle ----------------------------------------------------------------------------------
    def open(self) -> None:
        """Load the newest snapshot, replay the log after it (truncating a torn tail), open the log for appends."""
        start = time.perf_counter()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        snap_path = snapshot.latest(self.data_dir)
        if snap_path is not None:
            snap = snapshot.load(snap_path)
            if snap.dim != self.s.dim:
                raise Internal(f"snapshot {snap_path.name} has dimension {snap.dim}; the configuration says {self.s.dim}")
            reuse = snap.index_factory == self.s.index_factory
            if not reuse:
                log.warning("index_factory changed: rebuilding the index from the snapshot's vectors")
            self.state.restore(snap, reuse_index=reuse)  # `snap` (and the index its vectors may view) lives here
            self.generation = snap.generation
        replayed = 0
        for rec in wal.replay(self.data_dir, self.generation, self.s.dim):
            if rec.generation != self.generation + 1:
                raise Internal(f"write-ahead log skips from generation {self.generation} to {rec.generation}")
            self._apply(rec)
            self.generation = rec.generation
            replayed += 1
        segs = wal.segments(self.data_dir)
        self._wal.open_segment(wal.segment_base(segs[-1]) if segs else self.generation)
        self._since_snapshot = replayed
        self.loaded = True
        log.info("shard loaded", extra={"fields": {
            "shard": self.s.shard_id, "documents": self.state.count, "generation": self.generation,
            "replayed": replayed, "snapshot": snap_path.name if snap_path else None, "ms": _ms(start)}})

    def close(self) -> None:
        """Snapshot pending writes (so the next start replays nothing) and close the log."""
        with self._write_mutex:
            if self.loaded and self._since_snapshot:
                self._snapshot()
            self._wal.close()
            self.loaded = False

    def _ready(self) -> None:
        if not self.loaded:
            raise Unavailable(f"shard {self.s.shard_id} is loading its snapshot and log (or closed); retry shortly")

    # ---- writes -------------------------------------------------------------------------------------
    def upsert(self, docs: list[Doc]) -> WriteResult:
        """Insert or replace documents; returns once the write is durable."""
        self._ready()
        checked = [validate.document(d.id, d.vector, d.text, d.metadata_json, self.s) for d in docs]
        if not checked:
            return WriteResult(0, self.generation, {})
        return self._write(wal.Record(0, wal.OP_UPSERT, checked, []))

    def delete(self, ids: list[str]) -> WriteResult:
        """Delete documents by id (missing ids are fine); `count` = ids that existed."""
        self._ready()
        for i in ids:
            validate.doc_id(i, self.s.max_id_bytes)
        if not ids:
            return WriteResult(0, self.generation, {})
        return self._write(wal.Record(0, wal.OP_DELETE, [], list(ids)))

    def train(self) -> tuple[bool, int]:
        """Train an untrained index (IVF, PQ) now on the live vectors; (trained, generation)."""
        self._ready()
        with self._write_mutex:
            if self.state.vectors.index.is_trained:
                return True, self.generation
            with self._rw.write():
                self.state.vectors.train()  # raises FailedPrecondition before anything is logged
            gen = self.generation + 1
            self._wal.append(gen, wal.encode(wal.OP_TRAIN))
            self.generation = gen
            return True, gen

    def _write(self, rec: wal.Record) -> WriteResult:
        body = wal.encode(rec.op, docs=rec.docs, ids=rec.ids)
        with self._write_mutex:
            self._ready()  # close() may have run while this write waited
            t0 = time.perf_counter()
            gen = self.generation + 1
            self._wal.append(gen, body)
            timings = {"wal": _ms(t0)}
            t1 = time.perf_counter()
            with self._rw.write():
                count = self._apply(rec)
                self.generation = gen
            timings["apply"] = _ms(t1)
            self._since_snapshot += 1
            if self._since_snapshot >= self.s.snapshot_every:
                t2 = time.perf_counter()
                self._snapshot()
                timings["snapshot"] = _ms(t2)
            return WriteResult(count, gen, timings)

    def _apply(self, rec: wal.Record) -> int:
        if rec.op == wal.OP_UPSERT:
            return self.state.upsert(rec.docs)
        if rec.op == wal.OP_DELETE:
            return self.state.delete(rec.ids)
        try:
            self.state.vectors.train()
        except Exception:  # noqa: BLE001 - a logged Train only ever succeeded; replay tolerates less data
            log.warning("replayed Train failed; searches stay exact until enough vectors exist", exc_info=True)
        return 0

    def _snapshot(self) -> None:
        """Caller holds the write mutex: no write can interleave; searches continue under the read lock."""
        if self.state.dead_fraction() > self.s.compact_dead_fraction:
            with self._rw.read():  # the rebuild (minutes for a big HNSW) runs beside searches
                fresh = self.state.compacted()
            with self._rw.write():
                self.state = fresh
        with self._rw.read():
            path = snapshot.write(self.data_dir, self.state.to_snapshot(self.generation), fsync=self.s.fsync)
        self._wal.open_segment(self.generation)
        for seg in wal.segments(self.data_dir):
            if wal.segment_base(seg) < self.generation:
                seg.unlink()
        snapshot.prune(self.data_dir, path)
        self._since_snapshot = 0
        log.info("snapshot written", extra={"fields": {"generation": self.generation, "documents": self.state.count}})

    # ---- reads --------------------------------------------------------------------------------------
    def get(self, ids: list[str]) -> tuple[list[Hit], list[str]]:
        """Documents by id with payloads (score 0), and the ids not found."""
        self._ready()
        found, missing = [], []
        with self._rw.read():
            for i in ids:
                slot = self.state.slot_of.get(i)
                if slot is None:
                    missing.append(i)
                else:
                    found.append(self.state.hit(slot, 0.0, True))
        return found, missing

    def _allowed(self, filters: list[FilterTerm]) -> np.ndarray | None:
        for f in filters:
            validate.filter_term(f.field, _kind(f.value), f.value)
        return self.state.meta.mask(filters, self.state.vectors.n)

    def search(self, q: SearchQuery) -> ShardResult:
        """Dense top-k (ANN, exact on small filtered subsets, or MRL coarse-to-fine) and/or BM25 top-k."""
        self._ready()
        s = self.s
        if q.vector is None and not q.text:
            raise InvalidArgument("nothing to search: set a vector, query_text, or both")
        vec = validate.vector(q.vector, s.dim, s.normalize, "query vector") if q.vector is not None else None
        k = validate.k(q.k, s.max_k) if vec is not None else 0
        lexical_k = validate.k(q.lexical_k or q.k, s.max_k, "lexical_k") if q.text else 0
        coarse = validate.coarse_dim(q.coarse_dim, s.dim)
        limits.search_params(s.limits(), ef_search=q.ef_search, nprobe=q.nprobe)
        candidates = q.coarse_candidates or s.coarse_factor * k
        if coarse and vec is not None and not k <= candidates <= 100 * s.max_k:
            raise InvalidArgument(f"coarse_candidates {candidates} must be between k ({k}) and {100 * s.max_k}")
        timings: dict[str, float] = {}
        dense: list[Hit] = []
        lexical: list[Hit] = []
        with self._rw.read():
            gen, v = self.generation, self.state.vectors
            allowed = self._allowed(q.filters)
            if vec is not None:
                t0 = time.perf_counter()
                if coarse:
                    mask = v.live_mask() if allowed is None else v.live_mask() & allowed
                    _, cand = v.coarse_topk(vec, candidates, mask, coarse)
                    scores = v.rescore(vec, cand)
                    order = np.lexsort((cand, -scores))[:k]
                    scores, slots = scores[order], cand[order]
                else:
                    exact = allowed is not None and self._small(int((allowed & v.live_mask()).sum()))
                    nprobe, ef = q.nprobe or s.default_nprobe, q.ef_search or s.default_ef_search
                    scores, slots = v.search(vec, k, allowed, nprobe, ef, exact)
                dense = self.state.hits(scores.tolist(), slots.tolist(), q.include_payloads)
                timings["dense"] = _ms(t0)
            if q.text:
                t0 = time.perf_counter()
                live = v.live_mask()
                rebuild = self.state.lexical.ensure_fresh(self.state.texts, live)
                if rebuild:
                    timings["bm25_rebuild"] = round(rebuild, 3)
                scores, slots = self.state.lexical.search(q.text, lexical_k, live if allowed is None else live & allowed)
                lexical = self.state.hits(scores.tolist(), slots.tolist(), q.include_payloads)
                timings["lexical"] = _ms(t0)
        return ShardResult(dense, lexical, gen, timings)

    def _small(self, matching: int) -> bool:
        n_live = self.state.vectors.n_live
        return matching <= self.s.exact_filter_max or matching < self.s.exact_filter_fraction * n_live

    def range_search(self, q: RangeQuery) -> Iterator[RangePage]:
        """Every document scoring >= threshold (exact; MRL sweep first when coarse_dim), in pages, best first."""
        self._ready()
        s = self.s
        vec = validate.vector(q.vector, s.dim, s.normalize, "query vector")
        threshold = validate.threshold(q.threshold)
        coarse = validate.coarse_dim(q.coarse_dim, s.dim)
        page_size = q.page_size or s.default_page_size
        if page_size > s.max_page_size:
            raise InvalidArgument(f"page_size {page_size} is above the limit {s.max_page_size} (max_page_size)")
        if q.max_results < 0:
            raise InvalidArgument("max_results must be >= 0 (0 = no cap)")
        t0 = time.perf_counter()
        with self._rw.read():
            gen, v = self.generation, self.state.vectors
            allowed = self._allowed(q.filters)
            mask = v.live_mask() if allowed is None else v.live_mask() & allowed
            if coarse:
                _, cand = v.range(vec, max(-1.0, threshold - s.coarse_range_margin), mask, coarse)
                scores = v.rescore(vec, cand)
                keep = scores >= threshold
                scores, slots = scores[keep], cand[keep]
            else:
                scores, slots = v.range(vec, threshold, mask)
            order = np.lexsort((slots, -scores))
            total = int(order.shape[0])
            if q.max_results:
                order = order[: q.max_results]
            hits = self.state.hits(scores[order].tolist(), slots[order].tolist(), q.include_payloads)
        timings = {"range": _ms(t0)}
        pages = max(1, -(-len(hits) // page_size))
        for p in range(pages):
            yield RangePage(hits[p * page_size : (p + 1) * page_size], p, p == pages - 1, total, gen,
                            timings if p == 0 else {})

    def stats(self) -> ShardStats:
        with self._rw.read():
            v = self.state.vectors
            return ShardStats(self.s.shard_id, self.state.count, self.generation, self.s.dim, self.s.index_factory,
                              bool(v.index.is_trained), v.device)

    def probe(self) -> bool:
        """Health: the shard is loaded, its log open, and a real search through the index answers."""
        if not self.loaded:
            return False
        with self._rw.read():
            return self.state.vectors.probe(self.s.default_nprobe, self.s.default_ef_search)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool_value"
    if isinstance(value, (int, float)):
        return "number_value"
    if isinstance(value, str):
        return "string_value"
    return type(value).__name__
