"""Exact scans over a slot matrix, in blocks (bounded temporaries): top-k, range, and the helpers they share.

Used where FAISS is not: before an IVF/PQ index is trained, on small filtered subsets, for range search, and for
the MRL coarse sweep. `block(a, b)` returns rows a..b of whatever matrix is scanned (full or a coarse view).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

BLOCK = 65_536  # rows per matmul block: bounds the temporary score matrix
Block = Callable[[int, int], np.ndarray]


def empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, np.float32), np.zeros(0, np.int64)


def normalised(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows left as they are)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (x / norms).astype(np.float32)


def topk(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best k (scores, rows), best first, ties broken by row (deterministic); -inf is never returned."""
    keep = np.isfinite(scores)
    scores, rows = scores[keep], rows[keep]
    if scores.shape[0] > k:
        part = np.argpartition(-scores, k - 1)[:k]
        scores, rows = scores[part], rows[part]
    order = np.lexsort((rows, -scores))
    return scores[order], rows[order]


def blocked_topk(block: Block, n: int, q: np.ndarray, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows (where `mask`) by inner product with q, scanning `block`s of rows."""
    best_s, best_r = empty()
    for a in range(0, n, BLOCK):
        b = min(a + BLOCK, n)
        s = block(a, b) @ q
        s[~mask[a:b]] = -np.inf
        s2, r2 = topk(s, np.arange(a, b, dtype=np.int64), k)
        best_s, best_r = topk(np.concatenate([best_s, s2]), np.concatenate([best_r, r2]), k)
    return best_s, best_r


def exact_topk(matrix: np.ndarray, q: np.ndarray, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-k over the rows where `mask`: gathers a sparse subset, scans a dense one in blocks."""
    count = int(mask.sum())
    if count == 0:
        return empty()
    n = matrix.shape[0]
    if count * 4 < n:
        rows = np.flatnonzero(mask)
        return topk(matrix[rows] @ q, rows, k)
    return blocked_topk(lambda a, b: matrix[a:b], n, q, k, mask)


def blocked_range(block: Block, n: int, q: np.ndarray, threshold: float, mask: np.ndarray):
    """Every row (where `mask`) scoring >= threshold: (scores, rows), unsorted."""
    out_s, out_r = [], []
    for a in range(0, n, BLOCK):
        b = min(a + BLOCK, n)
        s = block(a, b) @ q
        hit = (s >= threshold) & mask[a:b]
        out_s.append(s[hit])
        out_r.append(np.flatnonzero(hit) + a)
    if not out_s:
        return empty()
    return np.concatenate(out_s).astype(np.float32), np.concatenate(out_r).astype(np.int64)
