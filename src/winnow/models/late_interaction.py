"""The offline default reranker: late interaction (MaxSim over the bi-encoder's token vectors) fused with the
first-stage order.

Why fused: plain MaxSim over all-MiniLM-L6-v2 token vectors reordering a BM25+dense top-80 *lowers* SciFact
nDCG@10 (0.752 vs 0.776 on 100 test queries); the MaxSim order carries evidence the first stage lacks, but is
weaker on its own. Fusing the two keeps the first stage's strength and adds MaxSim's. Three fusions are offered,
z-scores taken over the request's candidates:
`linear-score` (default): weight * z(MaxSim) + (1 - weight) * z(first-stage score) -- the gateway's convex fused
score keeps how far apart candidates are, which a rank throws away;
`linear`: weight * z(MaxSim) + (1 - weight) * z(1 / (k + first-stage rank));
`rrf`: weight / (k + MaxSim rank) + (1 - weight) / (k + first-stage rank).
The fusion and its weight were chosen on SciFact *train* against the gateway's convex first stage
(studies/reranker_retune.py; the earlier RRF-first-stage study is studies/reranker_study.py; numbers in docs/models.md).

Speed: document token vectors are cached (fp16) in a bounded LRU keyed by (doc id, text hash), so a candidate
seen before costs one matrix product; query token vectors are cached too. Missing documents of a micro-batch are
encoded in one padded forward pass, and MaxSim runs as one batched product per query.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from winnow.models.encoder import Encoder, PreparedText
from winnow.models.fusion import FUSIONS, linear_fuse, linear_score_fuse, rrf_fuse  # noqa: F401 - re-exported
from winnow.models.scorer import PreparedPair, Candidate, Scorer


class TokenVectorCache:
    """A thread-safe LRU of token matrices (fp16), bounded by bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._data: OrderedDict[tuple[str, str], tuple[np.ndarray, bool]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str]) -> tuple[np.ndarray, bool] | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return hit

    def put(self, key: tuple[str, str], vectors: np.ndarray, truncated: bool) -> None:
        mat = np.ascontiguousarray(vectors, dtype=np.float16)
        if mat.nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old[0].nbytes
            self._data[key] = (mat, truncated)
            self._bytes += mat.nbytes
            while self._bytes > self.max_bytes and self._data:
                _, (evicted, _) = self._data.popitem(last=False)
                self._bytes -= evicted.nbytes

    def __len__(self) -> int:
        return len(self._data)

    @property
    def nbytes(self) -> int:
        return self._bytes


def text_key(doc_id: str, text: str) -> tuple[str, str]:
    """Cache key of a candidate: its id and a hash of its text (an edited document is a new entry)."""
    return doc_id, hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


def maxsim(query: np.ndarray, docs: Sequence[np.ndarray]) -> np.ndarray:
    """Mean over query tokens of the best cosine with any document token, for each document (batched).

    `query` [q, d] and each doc [t_i, d] (t_i >= 1) hold unit-length rows. One product over every document's
    tokens ([sum t_i, d] x [d, q]), then the best row per document segment: no padding. The fp16 -> fp32
    conversion and the product run in torch, `_CHUNK_ROWS` token rows at a time, so each converted block is
    multiplied while it is still in cache instead of a whole fp32 copy going through memory (16.1 -> 11.8 ms for
    80 SciFact abstracts, 19k rows); numpy's half conversion is several times slower, and numpy's BLAS threads
    would spin against torch's between the two (the next query forward pass took twice as long;
    studies/late_interaction_speed.py).
    """
    if not docs:
        return np.zeros(0, dtype=np.float32)
    import torch

    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    if not lengths.all():
        raise ValueError("every document needs at least one token vector")
    # One concatenated copy (writable, whatever the stored matrices are: memory-mapped ones are read-only).
    flat = torch.from_numpy(np.concatenate(docs))
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))
    sims = torch.empty((flat.shape[0], q.shape[0]), dtype=torch.float32)
    for start in range(0, flat.shape[0], _CHUNK_ROWS):
        block = flat[start:start + _CHUNK_ROWS]
        torch.mm(block.float() if block.dtype != torch.float32 else block, q.T, out=sims[start:start + _CHUNK_ROWS])
    starts = np.concatenate(([0], np.cumsum(lengths[:-1])))
    return np.maximum.reduceat(sims.numpy(), starts, axis=0).mean(axis=1)


_CHUNK_ROWS = 2048  # x 384 dims x 4 bytes = 3 MiB: a block that stays in cache between conversion and product


@dataclass(frozen=True, slots=True)
class _Item:
    query: str
    key: tuple[str, str]
    text: str
    doc: PreparedText | None  # None when the token vectors were cached at prepare time


class LateInteractionScorer(Scorer):
    """MaxSim over an encoder's token vectors, fused with the first-stage rank (see module docstring)."""

    def __init__(
        self,
        encoder: Encoder,
        *,
        fusion: str = "linear-score",
        weight: float = 0.6,
        rrf_k: float = 100.0,
        skip_special: bool = False,
        cache_bytes: int = 1 << 30,
        query_cache: int = 1024,
        store=None,
    ) -> None:
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
        self.name = f"late-interaction-maxsim-{fusion}-fusion"
        self._fuse = FUSIONS[fusion]
        self.encoder = encoder
        self.weight = weight
        self.rrf_k = rrf_k
        self.model_id = encoder.model_id
        self.placement = encoder.placement
        self.max_length = encoder.max_seq_length
        self.cache = TokenVectorCache(cache_bytes)
        self._queries = TokenVectorCache(max(query_cache, 1) * 64 * 1024)
        special = getattr(encoder, "special_ids", None)
        self._special = np.array(sorted(special()), dtype=np.int64) if (skip_special and special) else None
        self.store = store  # a TokenVectorStore: vectors survive restarts; warmed into the LRU now
        if store is not None:
            store.warm(self.cache)

    def _cached(self, key: tuple[str, str]) -> tuple[np.ndarray, bool] | None:
        """Memory first, then the persistent store (promoted into memory)."""
        hit = self.cache.get(key)
        if hit is None and self.store is not None:
            hit = self.store.get(key)
            if hit is not None:
                self.cache.put(key, hit[0], hit[1])
        return hit

    def _keep(self, p: PreparedText, vectors: np.ndarray) -> np.ndarray:
        """Drop special-token rows ([CLS], [SEP]): they match everything and blur MaxSim."""
        if self._special is None:
            return vectors
        ids = np.asarray(p.input_ids, dtype=np.int64)
        keep = ~np.isin(ids, self._special)
        return vectors[keep] if keep.any() else vectors

    def prepare(self, query: str, candidates: Sequence[Candidate]) -> list[PreparedPair]:
        keys = [text_key(c.id, c.text) for c in candidates]
        cached = [self._cached(k) for k in keys]
        missing = [i for i, hit in enumerate(cached) if hit is None]
        docs = dict(zip(missing, self.encoder.prepare([candidates[i].text for i in missing], "document")))
        out = []
        for i, c in enumerate(candidates):
            if i in docs:
                d = docs[i]
                out.append(PreparedPair(_Item(query, keys[i], c.text, d), d.tokens, d.truncated))
            else:
                vec, truncated = cached[i]  # type: ignore[misc]
                out.append(PreparedPair(_Item(query, keys[i], c.text, None), 1, truncated))
        return out

    def _query_vectors(self, queries: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        todo = []
        for q in queries:
            hit = self._queries.get(("q", q))
            if hit is None:
                todo.append(q)
            else:
                found[q] = hit[0].astype(np.float32)
        if todo:
            prepared = self.encoder.prepare(todo, "query")
            for q, p, vec in zip(todo, prepared, self.encoder.token_vectors(prepared)):
                kept = self._keep(p, vec)
                self._queries.put(("q", q), kept, p.truncated)
                found[q] = kept
        return found

    def forward(self, pairs: list[PreparedPair]) -> list[float]:
        items: list[_Item] = [p.payload for p in pairs]
        vectors: dict[tuple[str, str], np.ndarray] = {}
        todo: dict[tuple[str, str], PreparedText] = {}
        for it in items:
            if it.key in vectors or it.key in todo:
                continue
            hit = self._cached(it.key) if it.doc is None else None
            if hit is not None:
                vectors[it.key] = hit[0]
            else:  # not tokenised yet (evicted since prepare) or never cached
                todo[it.key] = it.doc or self.encoder.prepare([it.text], "document")[0]
        if todo:
            keys = sorted(todo, key=lambda k: todo[k].tokens)
            prepared = [todo[k] for k in keys]
            for k, p, vec in zip(keys, prepared, self.encoder.token_vectors(prepared)):
                kept = self._keep(p, vec)
                self.cache.put(k, kept, p.truncated)
                if self.store is not None:
                    self.store.put(k, kept, p.truncated)
                vectors[k] = kept
        qvecs = self._query_vectors(sorted({it.query for it in items}))
        scores = np.zeros(len(items), dtype=np.float32)
        by_query: dict[str, list[int]] = {}
        for i, it in enumerate(items):
            by_query.setdefault(it.query, []).append(i)
        for q, idx in by_query.items():
            scores[idx] = maxsim(qvecs[q], [vectors[items[i].key] for i in idx])
        return scores.tolist()

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def finish(self, candidates: Sequence[Candidate], raw: Sequence[float]) -> list[float]:
        ranks = [c.first_stage_rank for c in candidates]
        if self._fuse is linear_score_fuse:
            return linear_score_fuse(raw, ranks, self.weight, self.rrf_k, [c.first_stage_score for c in candidates])
        return self._fuse(raw, ranks, self.weight, self.rrf_k)
