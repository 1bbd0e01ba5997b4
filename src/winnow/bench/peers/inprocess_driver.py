"""The in-process baseline: FAISS (exact inner product) + bm25s in one Python process, fused with RRF.

    python inprocess_driver.py --workload DIR

What a user would write in a script: no network, no service. BM25 is bm25s with English stopwords and the
PyStemmer English stemmer (as Winnow's shards); dense is `IndexFlatIP` (exact, as Milvus FLAT); hybrid = RRF
(k=60) over the two top-`window` lists; the top k comes back with its texts looked up.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import driverlib  # noqa: E402

RRF_K = 60


class InProcessEngine:
    def __init__(self, w: driverlib.Workload, encode) -> None:
        import bm25s
        import faiss
        import Stemmer

        faiss.omp_set_num_threads(1)  # batch-1 queries: OpenMP start-up costs more than it saves
        self.w, self.encode, self.bm25s = w, encode, bm25s
        self.index = faiss.IndexFlatIP(int(w.doc_vectors.shape[1]))
        self.index.add(np.ascontiguousarray(w.doc_vectors, dtype=np.float32))
        self.stemmer = Stemmer.Stemmer("english")
        self.bm25 = bm25s.BM25()
        self.bm25.index(bm25s.tokenize(w.doc_texts, stopwords="en", stemmer=self.stemmer, show_progress=False),
                        show_progress=False)

    def _dense(self, vec: np.ndarray, k: int) -> np.ndarray:
        return self.index.search(vec.reshape(1, -1).astype(np.float32), k)[1][0]

    def _lexical(self, q: str, k: int) -> np.ndarray:
        tokens = self.bm25s.tokenize([q], stopwords="en", stemmer=self.stemmer, show_progress=False)
        if not tokens.vocab:
            return np.zeros(0, np.int64)
        rows, scores = self.bm25.retrieve(tokens, k=k, show_progress=False, n_threads=0)
        return rows[0][scores[0] > 0]

    def search(self, qi: int, mode: str, text: bool) -> list[str]:
        w, q = self.w, self.w.query_texts[qi]
        if mode == "lexical":
            rows = self._lexical(q, w.k)
        else:
            vec = self.encode(q) if text else w.query_vectors[qi]
            if mode == "dense":
                rows = self._dense(vec, w.k)
            else:
                fused: dict[int, float] = {}
                for lst in (self._dense(vec, w.window), self._lexical(q, w.window)):
                    for rank, row in enumerate(lst.tolist()):
                        fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank + 1)
                rows = sorted(fused, key=lambda r: (-fused[r], r))[: w.k]
        rows = [int(r) for r in rows if r >= 0]
        _ = [w.doc_texts[r] for r in rows]  # the payloads a caller gets back
        return [w.doc_ids[r] for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    args = ap.parse_args()
    w = driverlib.Workload(args.workload)
    encode = w.encoder()
    t = time.perf_counter()
    engine = InProcessEngine(w, encode)
    driverlib.serve(engine, w, {"build_s": round(time.perf_counter() - t, 1)})


if __name__ == "__main__":
    main()
