"""Vectors of one shard: a slot matrix (the source of truth) and a FAISS index over it.

Every vector ever added gets the next *slot* (an int64 FAISS id). Slots are only appended, in order, so the
FAISS index's sequential ids equal the slots for every index type (HNSW cannot `add_with_ids` or `remove_ids`).
Deleting or replacing a document kills its slot: searches pass a bitmap IDSelector of live slots into FAISS, so
dead slots are excluded inside the search, never post-filtered. Compaction (at snapshot time) renumbers slots.

For Flat and HNSW-over-Flat indexes the "matrix" is a zero-copy view of FAISS's own flat storage (vectors are
held once); other types (IVF, PQ: lossy or list-ordered) keep a separate float32 matrix. Either way it serves
what FAISS cannot: exact search before an IVF/PQ index is trained, exact search on a small
filtered subset, exact range search, and the MRL coarse sweep over pre-normalised leading dimensions.
Not thread-safe: the shard holds a read/write lock around it.
"""

from __future__ import annotations

import logging

import faiss
import numpy as np

from winnow.common.errors import FailedPrecondition, InvalidArgument
from winnow.services.index import scan

log = logging.getLogger(__name__)

def set_omp_threads(n: int) -> None:
    """OpenMP threads for FAISS calls made from the calling thread (an executor initializer); 0 = leave as is."""
    if n > 0:
        faiss.omp_set_num_threads(n)


def storage_view(index: faiss.Index, n: int) -> np.ndarray:
    """The n x d vectors of a Flat / HNSWx,Flat index as a zero-copy view (valid while the index lives, unchanged)."""
    storage = _flat_storage(index)
    if storage is None:
        raise ValueError("index has no flat storage")
    if n == 0:
        return np.zeros((0, index.d), np.float32)
    return faiss.rev_swig_ptr(storage.get_xb(), n * index.d).reshape(n, index.d)


def _flat_storage(index: faiss.Index) -> faiss.IndexFlat | None:
    """The IndexFlat that holds every vector in slot order (Flat, HNSWx,Flat), or None for other types."""
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexFlat):
        return inner
    if isinstance(inner, faiss.IndexHNSW):
        storage = faiss.downcast_index(inner.storage)
        if isinstance(storage, faiss.IndexFlat):
            return storage
    return None


class VectorStore:
    """Append-only slots of float32 vectors with liveness, a FAISS index, and coarse (MRL) views."""

    def __init__(self, dim: int, factory: str, coarse_dims: list[int], train_min: int = 0, use_gpu: bool = False):
        self.dim = dim
        self.factory = factory
        try:
            self.index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise InvalidArgument(f"index_factory {factory!r} is not a valid FAISS factory string: {exc}") from None
        self.coarse_dims = sorted({d for d in coarse_dims if 0 < d < dim})
        self._ivf = faiss.try_extract_index_ivf(self.index)
        self._storage = _flat_storage(self.index)  # not None: vectors live only in FAISS
        self.train_min = train_min or (39 * self._ivf.nlist if self._ivf is not None else 1000)
        self.n = 0  # slots used
        self._vecs = np.zeros((0, dim), np.float32)
        self._live = np.zeros(0, bool)
        self._coarse: dict[int, np.ndarray] = {d: np.zeros((0, d), np.float32) for d in self.coarse_dims}
        self._bits: np.ndarray | None = None  # packed live bitmap, rebuilt when liveness changes
        self.n_live = 0
        self.device = "cpu"
        self._gpu = None
        self._gpu_res = None
        self._gpu_stale = True
        if use_gpu:
            self._init_gpu()

    # ---- writes -------------------------------------------------------------------------------------
    def add(self, vectors: np.ndarray) -> np.ndarray:
        """Append vectors (m x dim, float32) as new live slots; returns their slots."""
        m = vectors.shape[0]
        start = self.n
        self._grow(start + m)
        if self._storage is None:
            self._vecs[start : start + m] = vectors
        self._live[start : start + m] = True
        for d, mat in self._coarse.items():
            mat[start : start + m] = scan.normalised(vectors[:, :d])
        self.n += m
        self.n_live += m
        self._bits = None
        if self.index.is_trained:
            self.index.add(vectors)
            self._gpu_stale = True
        elif self.n_live >= self.train_min:
            self.train()
        return np.arange(start, start + m, dtype=np.int64)

    def kill(self, slots: np.ndarray) -> None:
        """Mark slots dead (deleted or replaced); they stay in FAISS but every search excludes them."""
        slots = slots[self._live[slots]]
        self._live[slots] = False
        self.n_live -= int(slots.shape[0])
        self._bits = None

    def train(self) -> bool:
        """Train an untrained index on the live vectors, then index every slot. True if trained now or before."""
        if self.index.is_trained:
            return True
        if self.n_live == 0:
            raise FailedPrecondition("cannot train an empty index: upsert documents first")
        try:
            self.index.train(self._m()[self._live[: self.n]])
        except RuntimeError as exc:
            raise FailedPrecondition(
                f"training {self.factory} on {self.n_live} vectors failed ({str(exc).splitlines()[0]}); add more vectors"
            ) from None
        self.index.add(self._m())
        self._gpu_stale = True
        log.info("index trained", extra={"fields": {"factory": self.factory, "vectors": self.n_live}})
        return True

    def compacted(self) -> "VectorStore":
        """A new store holding only the live slots, renumbered in order (the old store is left untouched, so
        searches can go on while it is built); a trained index stays trained."""
        kept = self._m()[self._live[: self.n]]
        fresh = VectorStore(self.dim, self.factory, self.coarse_dims, self.train_min, use_gpu=False)
        fresh.device, fresh._gpu_res = self.device, self._gpu_res
        if self.index.is_trained and not fresh.index.is_trained and kept.shape[0]:
            try:
                fresh.index.train(kept)
            except RuntimeError:
                log.warning("compaction: too few vectors left to train; searches stay exact until there are")
        if kept.shape[0]:
            fresh.add(kept)
        return fresh

    def restore(self, vectors: np.ndarray, live: np.ndarray, index: faiss.Index | None) -> None:
        """Load slots from a snapshot into this empty store; `index` (if given) must hold exactly those slots."""
        n = vectors.shape[0]
        if index is not None and (index.ntotal != n or index.d != self.dim):
            log.warning("snapshot index does not match its vectors; rebuilding it")
            index = None
        if index is not None:
            self.index = index
            self._ivf = faiss.try_extract_index_ivf(index)
            self._storage = _flat_storage(index)
        self._grow(n)
        self._live[:n] = live
        if self._storage is None:
            self._vecs[:n] = vectors
        for d, mat in self._coarse.items():
            for a in range(0, n, scan.BLOCK):
                b = min(a + scan.BLOCK, n)
                mat[a:b] = scan.normalised(vectors[a:b, :d])
        self.n, self.n_live, self._bits = n, int(live.sum()), None
        if index is None:  # no saved index (untrained, or another factory): index the vectors afresh
            if self.index.is_trained:
                self.index.add(np.ascontiguousarray(vectors))
            elif self.n_live >= self.train_min:
                self.train()
        self._gpu_stale = True

    # ---- reads --------------------------------------------------------------------------------------
    def vectors(self) -> np.ndarray:
        """The slot matrix (a view: n x dim)."""
        return self._m()

    def live_mask(self) -> np.ndarray:
        """Liveness per slot (a view: n)."""
        return self._live[: self.n]

    def search(
        self, q: np.ndarray, k: int, allowed: np.ndarray | None, nprobe: int, ef_search: int, exact: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, slots) of one query among live slots (and `allowed`, a bool mask, when given).

        `exact` scans the matrix (used for small filtered subsets); an untrained index is always exact.
        """
        if self.n_live == 0:
            return scan.empty()
        mask = self._live[: self.n] if allowed is None else (self._live[: self.n] & allowed)
        if exact or not self.index.is_trained:
            return self.exact(q, k, mask)
        sel_bits = None
        if allowed is not None:
            sel_bits = np.packbits(mask, bitorder="little")
        elif self.n_live < self.n:
            if self._bits is None:
                self._bits = np.packbits(self._live[: self.n], bitorder="little")
            sel_bits = self._bits
        index = self.index
        if sel_bits is None and self.device != "cpu":
            index = self._gpu_index() or self.index
        params, _sel = self._params(nprobe, ef_search, sel_bits) if index is self.index else (None, None)
        scores, ids = index.search(q.reshape(1, -1), k, params=params)  # _sel and sel_bits stay alive until here
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]

    def exact(self, q: np.ndarray, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Brute-force top-k over the slots where `mask` is true."""
        return scan.exact_topk(self._m(), q, k, mask)

    def range(self, q: np.ndarray, threshold: float, mask: np.ndarray, coarse_dim: int = 0):
        """Every slot in `mask` scoring >= threshold, exactly, at full dimension or at `coarse_dim` (unsorted)."""
        qq = scan.normalised(q[:coarse_dim].reshape(1, -1))[0] if coarse_dim else q
        return scan.blocked_range(lambda a, b: self._block(a, b, coarse_dim), self.n, qq, threshold, mask)

    def coarse_topk(self, q: np.ndarray, k: int, mask: np.ndarray, coarse_dim: int):
        """Top-k slots by the cosine of the first `coarse_dim` dimensions (the MRL sweep)."""
        qq = scan.normalised(q[:coarse_dim].reshape(1, -1))[0]
        return scan.blocked_topk(lambda a, b: self._block(a, b, coarse_dim), self.n, qq, k, mask)

    def rescore(self, q: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Full-dimension scores of the given slots."""
        return self._m()[slots] @ q if slots.shape[0] else np.zeros(0, np.float32)

    def probe(self, nprobe: int, ef_search: int) -> bool:
        """Touch the index: a real search of a stored vector at the serving parameters answers with live slots
        only (an ANN index may return fewer than k among deleted slots: that is an answer, not a failure), and
        the exact scan finds the vector itself. Holds for any index type and any share of deleted slots."""
        if self.n_live == 0:
            return self.index.ntotal >= 0
        slot = int(np.flatnonzero(self._live[: self.n])[0])
        q = self._m()[slot].copy()
        _, slots = self.search(q, min(10, self.n_live), None, nprobe, ef_search, exact=False)
        if not bool(self._live[slots].all()):
            return False
        _, exact = self.exact(q, 1, self._live[: self.n])
        return exact.shape[0] == 1

    # ---- internals ----------------------------------------------------------------------------------
    def _block(self, a: int, b: int, coarse_dim: int) -> np.ndarray:
        if not coarse_dim:
            return self._m()[a:b]
        if coarse_dim in self._coarse:
            return self._coarse[coarse_dim][a:b]
        return scan.normalised(self._m()[a:b, :coarse_dim])

    def _m(self) -> np.ndarray:
        """The n x dim slot matrix: a view into FAISS's flat storage, or the own copy. Valid until the next add."""
        if self._storage is None:
            return self._vecs[: self.n]
        if self.n == 0:
            return np.zeros((0, self.dim), np.float32)
        return faiss.rev_swig_ptr(self._storage.get_xb(), self.n * self.dim).reshape(self.n, self.dim)

    @property
    def vectors_in_index(self) -> bool:
        """True when the FAISS index holds every vector in slot order (no separate matrix)."""
        return self._storage is not None

    def _grow(self, need: int) -> None:
        cap = self._live.shape[0]
        if need <= cap:
            return
        new_cap = max(need, 2 * cap, 1024)
        if self._storage is None:
            vecs = np.zeros((new_cap, self.dim), np.float32)
            vecs[: self.n] = self._vecs[: self.n]
            self._vecs = vecs
        live = np.zeros(new_cap, bool)
        live[: self.n] = self._live[: self.n]
        self._live = live
        for d, mat in list(self._coarse.items()):
            grown = np.zeros((new_cap, d), np.float32)
            grown[: self.n] = mat[: self.n]
            self._coarse[d] = grown

    def _params(self, nprobe: int, ef_search: int, bits: np.ndarray | None):
        sel = faiss.IDSelectorBitmap(self.n, faiss.swig_ptr(bits)) if bits is not None else None
        inner = faiss.downcast_index(self.index)
        if isinstance(inner, faiss.IndexPreTransform):
            inner = faiss.downcast_index(inner.index)
        if isinstance(inner, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW(efSearch=ef_search)
        elif self._ivf is not None:
            params = faiss.SearchParametersIVF(nprobe=nprobe)
        else:
            params = faiss.SearchParameters()
        if sel is not None:
            params.sel = sel
        return params, sel  # the caller keeps `sel` (and the bitmap it points into) alive through the search

    def _init_gpu(self) -> None:
        try:
            if faiss.get_num_gpus() <= 0:
                return
            self._gpu_res = faiss.StandardGpuResources()
            faiss.index_cpu_to_gpu(self._gpu_res, 0, self.index)  # raises when the type has no GPU version
            self.device = "cuda:0"
        except (AttributeError, RuntimeError) as exc:
            log.info("FAISS GPU not used", extra={"fields": {"reason": str(exc).splitlines()[0] if str(exc) else "n/a"}})

    def _gpu_index(self):
        """A GPU clone for unfiltered searches, re-cloned lazily after writes."""
        if self._gpu_stale or self._gpu is None:
            try:
                self._gpu = faiss.index_cpu_to_gpu(self._gpu_res, 0, self.index)
                self._gpu_stale = False
            except RuntimeError:
                self.device, self._gpu = "cpu", None
        return self._gpu
