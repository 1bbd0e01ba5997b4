"""The in-memory state of a shard: documents by slot, id map, vectors, metadata postings, BM25 staleness.

Pure, lock-free and durable-agnostic: `Shard` serialises calls and writes the log first. Applying the same
records in the same order always yields the same state, which is what log replay relies on.
"""

from __future__ import annotations

import numpy as np

from winnow.services.index.filters import MetadataIndex
from winnow.services.index.lexical import Bm25Index
from winnow.services.index.model import Doc, Hit
from winnow.services.index.snapshot import SnapshotData
from winnow.services.index.vectors import VectorStore


class ShardState:
    """Slots hold (id, text, metadata); a dead slot has id None. `slot_of` maps live ids to slots."""

    def __init__(self, vectors: VectorStore, lexical: Bm25Index) -> None:
        self.vectors = vectors
        self.lexical = lexical
        self.meta = MetadataIndex()
        self.ids: list[str | None] = []
        self.texts: list[str] = []
        self.metas: list[str] = []
        self.slot_of: dict[str, int] = {}

    @property
    def count(self) -> int:
        return len(self.slot_of)

    def upsert(self, docs: list[Doc]) -> int:
        """Insert or replace; within one batch the last document with an id wins."""
        latest = list({d.id: d for d in docs}.values())
        self._kill([self.slot_of[d.id] for d in latest if d.id in self.slot_of])
        slots = self.vectors.add(np.stack([d.vector for d in latest]))
        for d, slot in zip(latest, slots.tolist()):
            self.ids.append(d.id)
            self.texts.append(d.text)
            self.metas.append(d.metadata_json)
            self.meta.add(slot, d.metadata_json)
            self.slot_of[d.id] = slot
        self.lexical.mark_added()
        return len(docs)

    def delete(self, ids: list[str]) -> int:
        """Remove the ids that exist; returns how many did."""
        slots = [self.slot_of[i] for i in dict.fromkeys(ids) if i in self.slot_of]
        self._kill(slots)
        return len(slots)

    def _kill(self, slots: list[int]) -> None:
        if not slots:
            return
        self.vectors.kill(np.asarray(slots, np.int64))
        for slot in slots:
            self.meta.remove(slot, self.metas[slot])
            del self.slot_of[self.ids[slot]]  # type: ignore[arg-type]
            self.ids[slot], self.texts[slot], self.metas[slot] = None, "", "{}"

    def hits(self, scores: list[float], slots: list[int], payload: bool) -> list[Hit]:
        """Hits for parallel lists of scores and slots (the hot path of every search: kept lean)."""
        ids = self.ids
        if not payload:
            return [Hit(ids[sl], sc) for sc, sl in zip(scores, slots)]  # type: ignore[arg-type]
        texts, metas = self.texts, self.metas
        return [Hit(ids[sl], sc, texts[sl], metas[sl]) for sc, sl in zip(scores, slots)]  # type: ignore[arg-type]

    def hit(self, slot: int, score: float, payload: bool) -> Hit:
        if payload:
            return Hit(self.ids[slot], float(score), self.texts[slot], self.metas[slot])  # type: ignore[arg-type]
        return Hit(self.ids[slot], float(score))  # type: ignore[arg-type]

    def dead_fraction(self) -> float:
        n = self.vectors.n
        return 0.0 if n == 0 else 1.0 - self.vectors.n_live / n

    def compacted(self) -> "ShardState":
        """A new state without the dead slots (renumbered; index rebuilt, BM25 fresh). Read-only on self."""
        keep = [s for s, i in enumerate(self.ids) if i is not None]
        new = ShardState(self.vectors.compacted(), Bm25Index(self.lexical.max_staleness_s))
        new.ids = [self.ids[s] for s in keep]
        new.texts = [self.texts[s] for s in keep]
        new.metas = [self.metas[s] for s in keep]
        new._reindex()
        return new

    def _reindex(self) -> None:
        self.meta = MetadataIndex()
        self.slot_of = {}
        for slot, (i, m) in enumerate(zip(self.ids, self.metas)):
            if i is not None:
                self.meta.add(slot, m)
                self.slot_of[i] = slot
        self.lexical.mark_added()

    def to_snapshot(self, generation: int) -> SnapshotData:
        v = self.vectors
        return SnapshotData(
            generation, v.dim, v.factory, v.vectors(), v.live_mask(), self.ids, self.texts, self.metas,
            v.index if v.index.is_trained else None, v.vectors_in_index,
        )

    def restore(self, snap: SnapshotData, reuse_index: bool = True) -> None:
        """Load a snapshot into this (empty) state; `reuse_index=False` rebuilds the index from the vectors."""
        self.vectors.restore(snap.vectors, snap.live, snap.index if reuse_index else None)
        self.ids, self.texts, self.metas = list(snap.ids), list(snap.texts), list(snap.metas)
        self._reindex()
