"""Warm a freshly loaded shard before it reports ready, so its first searches cost what later ones do.

After a start the shard has its vectors in memory but its BM25 index is stale (bm25s indexes are rebuilt lazily:
the first lexical search would tokenise every text, seconds for a big shard), and FAISS's graph/lists, the id and
payload lists and the search threads have never been touched. `warm` runs real hybrid searches with stored
documents as queries (their own vectors, the start of their own texts), which rebuilds BM25 and walks the index
the way traffic will. Pure: no gRPC; the caller runs it on the search threads.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from winnow.services.index.model import SearchQuery
from winnow.services.index.shard import Shard

log = logging.getLogger(__name__)


def warm(shard: Shard, searches: int = 16, k: int = 80) -> dict[str, float]:
    """Run `searches` hybrid searches over stored documents; returns {"warmup_ms", "bm25_rebuild_ms", ...}."""
    start = time.perf_counter()
    st = shard.state
    live = np.flatnonzero(st.vectors.live_mask())
    if live.shape[0] == 0:
        return {}
    vectors = st.vectors.vectors()
    picks = live[np.linspace(0, live.shape[0] - 1, num=min(searches, live.shape[0])).astype(np.int64)]
    rebuild = 0.0
    for slot in picks.tolist():
        text = " ".join(st.texts[slot].split()[:24])
        res = shard.search(SearchQuery(vector=np.array(vectors[slot], np.float32), k=k, text=text, lexical_k=k,
                                       include_payloads=True))
        rebuild += res.timings_ms.get("bm25_rebuild", 0.0)
    out = {"warmup_ms": round((time.perf_counter() - start) * 1000, 1), "bm25_rebuild_ms": round(rebuild, 1),
           "searches": float(len(picks))}
    log.info("shard warmed up", extra={"fields": out})
    return out
