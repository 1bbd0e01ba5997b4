"""The cluster's first stage, in process, for mining hard negatives: dense + BM25, fused as the gateway fuses.

It reuses the project's own pieces so the negatives are the ones the served first stage would rank high: the
encoder (`SentenceTransformerEncoder`, the embedder's model), the index's `Bm25Index` (bm25s, English stemmer) and
the gateway's `convex` fusion (z-scored dense + BM25, alpha 0.5). Dense search is exact inner product (the index's
default factory is Flat). Corpus vectors are cached on disk keyed by model id and a hash of the texts, because
encoding a corpus is the slow part on 2 CPU cores and a second training run over the same corpus should not pay it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

LIST_DEPTH = 80  # per-list depth before fusion, as the gateway's candidate window


@dataclass(frozen=True, slots=True)
class Ranked:
    """One first-stage hit: document row, fused score, and its dense cosine (for false-negative guards)."""

    row: int
    score: float
    dense: float


def texts_digest(model_id: str, texts: Sequence[str]) -> str:
    """A short hash naming one (model, corpus) pair's vector cache."""
    h = hashlib.sha256(model_id.encode())
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())
    return h.hexdigest()[:20]


def encode_sorted(encoder, texts: Sequence[str], kind: str, batch_size: int = 32,
                  progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Unit vectors of `texts` in input order, encoded in length-sorted batches (little padding)."""
    out = np.zeros((len(texts), encoder.dimension), dtype=np.float32)
    if not texts:
        return out
    prepared = encoder.prepare(list(texts), kind)
    order = sorted(range(len(texts)), key=lambda i: -prepared[i].tokens)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        out[idx] = encoder.forward([prepared[i] for i in idx])
        if progress is not None:
            progress(len(idx))
    return out


class FirstStage:
    """Dense + BM25 over a fixed list of texts, fused with the gateway's convex fusion."""

    def __init__(self, texts: Sequence[str], encoder, cache_dir: Path | None = None,
                 progress: Callable[[str, int], Callable[[int], None]] | None = None, alpha: float = 0.5,
                 vectors: np.ndarray | None = None) -> None:
        from winnow.services.index.lexical import Bm25Index

        self.texts = list(texts)
        self.encoder = encoder
        self.alpha = alpha
        self.vectors = vectors if vectors is not None else self._corpus_vectors(cache_dir, progress)
        self.bm25 = Bm25Index()
        self.bm25.mark_added()
        self._live = np.ones(len(self.texts), dtype=bool)
        self.bm25.ensure_fresh(self.texts, self._live)

    def _corpus_vectors(self, cache_dir: Path | None, progress) -> np.ndarray:
        path = None
        if cache_dir is not None:
            path = Path(cache_dir) / f"corpus-{texts_digest(self.encoder.model_id, self.texts)}.npy"
            if path.is_file():
                vecs = np.load(path)
                if vecs.shape == (len(self.texts), self.encoder.dimension):
                    log.info("corpus vectors from cache %s", path)
                    return vecs
        bar = progress("encode corpus", len(self.texts)) if progress else None
        vecs = encode_sorted(self.encoder, self.texts, "document", progress=bar)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
            np.save(tmp, vecs)
            os.replace(tmp, path)
        return vecs

    def search(self, queries: Sequence[str], depth: int = LIST_DEPTH,
               progress: Callable[[int], None] | None = None) -> list[list[Ranked]]:
        """Per query, the fused top `depth` (best first)."""
        out: list[list[Ranked]] = []
        for fused, sims in self._fused(queries, depth, max(depth, LIST_DEPTH), progress):
            out.append([Ranked(int(c.id), float(c.first_stage_score), float(sims[int(c.id)])) for c in fused])
        return out

    def candidates(self, queries: Sequence[str], window: int, ids: Sequence[str],
                   progress: Callable[[int], None] | None = None) -> list[list]:
        """Per query, the gateway's `Candidate`s of a search with candidate window `window`, named by `ids` (one
        per text): each list cut to `window` before the convex fusion, as the gateway asks each shard for, and
        ties broken by id as the gateway's merge does (dense/lexical scores and ranks, fused score and rank; no
        text yet)."""
        return [fused for fused, _ in self._fused(queries, window, window, progress, list(ids))]

    def _fused(self, queries: Sequence[str], depth: int, list_depth: int, progress, ids: list[str] | None = None):
        from winnow.services.gateway.fusion import convex
        from winnow.services.gateway.model import Candidate

        name = (lambda r: ids[r]) if ids is not None else str  # noqa: E731
        tie = (lambda r: ids[r]) if ids is not None else (lambda r: r)  # noqa: E731
        qv = encode_sorted(self.encoder, queries, "query")
        n = len(self.texts)
        k = min(list_depth, n)
        for qi, query in enumerate(queries):
            sims = self.vectors @ qv[qi]
            top = np.argpartition(-sims, k - 1)[:k] if k < n else np.arange(n)
            dense = sorted(((float(sims[j]), int(j)) for j in top), key=lambda t: (-t[0], tie(t[1])))
            scores, slots = self.bm25.search(query, k, self._live)
            lex = sorted(((float(s), int(r)) for s, r in zip(scores, slots)), key=lambda t: (-t[0], tie(t[1])))
            fused = convex([Candidate(id=name(r), dense_score=s) for s, r in dense],
                           [Candidate(id=name(r), lexical_score=s) for s, r in lex], alpha=self.alpha, window=depth)
            if progress is not None:
                progress(1)
            yield fused, sims
