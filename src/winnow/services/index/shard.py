"""The index shard core (no grpc): one replica's view of its log partition, and the search modes.

Write path: the replica's log follower hands `apply` the partition's messages in order; a batch applies under the
write lock (searches see all of it or none of it) and the generation becomes the last message's sequence, so the
generation *is* the applied sequence of the partition. Snapshots record it; a restart loads the newest snapshot
and the follower replays the log after it. The log (NATS JetStream) is the only durable copy of the documents:
the shard keeps no write-ahead log of its own. Blocking calls: run them in an executor, never on the event loop.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from winnow.common import limits
from winnow.common.errors import Internal, InvalidArgument, Unavailable
from winnow.log import codec
from winnow.services.index import snapshot, validate
from winnow.services.index.lexical import Bm25Index
from winnow.services.index.model import (
    Doc, FilterTerm, Hit, RangePage, RangeQuery, SearchQuery, ShardConfig, ShardResult, ShardStats, WriteResult,
)
from winnow.services.index.rwlock import RWLock
from winnow.services.index.state import ShardState
from winnow.services.index.vectors import VectorStore

log = logging.getLogger(__name__)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


class Shard:
    """One replica of one shard. `open()` loads the newest snapshot; `apply()` follows the log; `close()`
    snapshots what was applied since the last one."""

    def __init__(self, config: ShardConfig) -> None:
        self.s = config
        self.data_dir = Path(config.data_dir)
        self.state = self._empty_state()
        self.generation = 0
        self._rw = RWLock()
        self._write_mutex = threading.Lock()
        self._since_snapshot = 0
        self.loaded = False
        self.skipped = 0  # log messages that could not be applied (unreadable or invalid), logged one by one
        self.log_meta: dict = {}  # identity of the log partition, recorded in snapshots (set by the follower)
        self.snapshot_log: dict = {}  # the log identity the loaded snapshot recorded

    def _empty_state(self) -> ShardState:
        s = self.s
        vectors = VectorStore(s.dim, s.index_factory, s.coarse_dims, s.train_min_vectors, use_gpu=s.use_gpu)
        return ShardState(vectors, Bm25Index(s.bm25_max_staleness_s))

    # ---- lifecycle ----------------------------------------------------------------------------------
    def open(self) -> None:
        """Load the newest snapshot (if any); the log after its generation is the follower's to replay."""
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
            self.snapshot_log = snap.log
        self.loaded = True
        log.info("shard loaded", extra={"fields": {
            "shard": self.s.shard_id, "documents": self.state.count, "generation": self.generation,
            "snapshot": snap_path.name if snap_path else None, "ms": _ms(start)}})

    def reset(self) -> None:
        """Forget everything (snapshots included): the follower rebuilds this replica from the log's start."""
        with self._write_mutex, self._rw.write():
            self.state = self._empty_state()
            self.generation = 0
            self._since_snapshot = 0
            self.snapshot_log = {}
            for p in self.data_dir.glob("snap-*"):
                shutil.rmtree(p, ignore_errors=True)
        log.warning("replica reset: rebuilding from the log", extra={"fields": {"shard": self.s.shard_id}})

    def close(self) -> None:
        """Snapshot what was applied since the last snapshot, so the next start replays less."""
        with self._write_mutex:
            if self.loaded and self._since_snapshot:
                self._snapshot()
            self.loaded = False

    def _ready(self) -> None:
        if not self.loaded:
            raise Unavailable(f"shard {self.s.shard_id} is loading its snapshot (or closed); retry shortly")

    # ---- writes -------------------------------------------------------------------------------------
    def apply(self, records: list[codec.LogRecord]) -> WriteResult:
        """Apply log messages in order; the generation becomes the last one's sequence. A message that fails
        validation (it cannot, through the gateway) is skipped and logged rather than stopping the partition."""
        self._ready()
        if not records:
            return WriteResult(0, self.generation, {})
        t0 = time.perf_counter()
        runs: list[tuple[int, list]] = []
        for r in records:
            item = self._checked(r)
            if item is None:
                continue
            if runs and runs[-1][0] == r.op:
                runs[-1][1].append(item)
            else:
                runs.append((r.op, [item]))
        with self._write_mutex:
            count = 0
            with self._rw.write():
                for op, items in runs:
                    count += self.state.upsert(items) if op == codec.OP_UPSERT else self.state.delete(items)
                self.generation = max(self.generation, records[-1].seq)
            timings = {"apply": _ms(t0)}
            self._since_snapshot += len(records)
            if self._since_snapshot >= self.s.snapshot_every:
                t1 = time.perf_counter()
                self._snapshot()
                timings["snapshot"] = _ms(t1)
            return WriteResult(count, self.generation, timings)

    def _checked(self, r: codec.LogRecord) -> Doc | str | None:
        try:
            if r.op == codec.OP_UPSERT:
                return validate.document(r.id, r.vector, r.text, r.metadata_json, self.s)
            if r.op == codec.OP_DELETE:
                return validate.doc_id(r.id, self.s.max_id_bytes)
        except InvalidArgument as exc:
            log.error("skipping an invalid log message", extra={"fields": {"seq": r.seq, "error": str(exc)}})
        self.skipped += 1
        return None

    def upsert(self, docs: list[Doc]) -> WriteResult:
        """Insert or replace documents directly, bypassing the log (benchmarks and tests of the core only:
        nothing applied this way survives a restart without a snapshot)."""
        self._ready()
        checked = [validate.document(d.id, d.vector, d.text, d.metadata_json, self.s) for d in docs]
        if not checked:
            return WriteResult(0, self.generation, {})
        return self.apply([codec.LogRecord(codec.OP_UPSERT, d.id, d.vector, d.text, d.metadata_json,
                                           self.generation + 1) for d in checked])

    def delete(self, ids: list[str]) -> WriteResult:
        """Delete documents by id directly, bypassing the log (see `upsert`); `count` = ids that existed."""
        self._ready()
        for i in ids:
            validate.doc_id(i, self.s.max_id_bytes)
        if not ids:
            return WriteResult(0, self.generation, {})
        return self.apply([codec.LogRecord(codec.OP_DELETE, i, seq=self.generation + 1) for i in ids])

    def train(self) -> tuple[bool, int]:
        """Train an untrained index (IVF, PQ) now on the live vectors; (trained, generation). Local to this
        replica: every replica trains by itself once `train_min_vectors` exist."""
        self._ready()
        with self._write_mutex:
            if not self.state.vectors.index.is_trained:
                with self._rw.write():
                    self.state.vectors.train()  # raises FailedPrecondition when there is too little data
            return True, self.generation

    def snapshot_now(self) -> None:
        with self._write_mutex:
            self._snapshot()

    def _snapshot(self) -> None:
        """Caller holds the write mutex: no write can interleave; searches continue under the read lock."""
        if self.state.dead_fraction() > self.s.compact_dead_fraction:
            with self._rw.read():  # the rebuild (minutes for a big HNSW) runs beside searches
                fresh = self.state.compacted()
            with self._rw.write():
                self.state = fresh
        with self._rw.read():
            snap = self.state.to_snapshot(self.generation)
            snap.log = {**self.log_meta, "written_at": time.time()}
            path = snapshot.write(self.data_dir, snap, fsync=self.s.fsync)
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

    def search(self, q: SearchQuery, wait: bool = True) -> ShardResult | None:
        """Dense top-k (ANN, exact on small filtered subsets, or MRL coarse-to-fine) and/or BM25 top-k.

        wait=False (a caller on an event loop): None at once, instead of blocking, when a write holds or waits
        for the lock, or when BM25 has to be rebuilt (or is being rebuilt) first; the caller then runs the search
        with wait=True on a thread."""
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
        with self._rw.read(blocking=wait) as held:
            if not held:
                return None
            gen, v = self.generation, self.state.vectors
            if q.text:
                live = v.live_mask()
                rebuild = self.state.lexical.ensure_fresh(self.state.texts, live, wait)
                if rebuild is None:
                    return None
                if rebuild:
                    timings["bm25_rebuild"] = round(rebuild, 3)
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
                dense = self._hits(scores, slots, q)
                timings["dense"] = _ms(t0)
            if q.text:
                t0 = time.perf_counter()
                scores, slots = self.state.lexical.search(q.text, lexical_k, live if allowed is None else live & allowed)
                lexical = self._hits(scores, slots, q)
                timings["lexical"] = _ms(t0)
        return ShardResult(dense, lexical, gen, timings)

    def _hits(self, scores: np.ndarray, slots: np.ndarray, q: SearchQuery) -> list[Hit]:
        """Hits best first; payloads on all (include_payloads), none, or the first q.payload_top only."""
        sc, sl = scores.tolist(), slots.tolist()
        top = q.payload_top or (len(sl) if q.include_payloads else 0)
        if top >= len(sl) or top == 0:
            return self.state.hits(sc, sl, top > 0)
        return self.state.hits(sc[:top], sl[:top], True) + self.state.hits(sc[top:], sl[top:], False)

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
        """Health: the shard is loaded and a real search through the index answers."""
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
