"""What the gateway core needs from the other services, as plain async interfaces (no gRPC here).

`Hit` is the index's own domain type (`winnow.services.index.model.Hit`), re-exported: one name, one definition.

`clients.py` implements them over gRPC; tests may implement them in-process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Protocol

import numpy as np

from winnow.services.gateway.model import Candidate
from winnow.services.index.model import Hit  # one Hit for the shard and its callers


@dataclass
class ShardSearchParams:
    """What both shard searches take besides the query: metadata filters, the MRL sweep dimension, index knobs.

    Keyword-only, so a query's own fields keep their positions (`ShardQuery(vector, k)`)."""

    _: KW_ONLY
    filters: tuple[tuple[str, Any], ...] = ()
    coarse_dim: int = 0
    nprobe: int = 0
    ef_search: int = 0


@dataclass
class ShardQuery(ShardSearchParams):
    """A top-k search on one shard: dense when `vector` is set, BM25 when `query_text` is non-empty, or both."""

    vector: np.ndarray | None  # None = no dense search
    k: int
    query_text: str = ""        # "" = no BM25
    lexical_k: int = 0
    min_applied_seq: int = 0    # read-your-writes: answer only from a replica that applied this sequence
    include_payloads: bool = True  # False: ids and scores only (the gateway fetches the final hits' payloads)
    packed: bool = False           # answer as (score, id) pairs + the payloads of each list's first payload_top
    payload_top: int = 0


@dataclass
class ShardRangeQuery(ShardSearchParams):
    """Every document of one shard scoring >= threshold, best first, in pages."""

    vector: np.ndarray
    threshold: float
    page_size: int = 256
    max_results: int = 0


@dataclass
class ShardResult:
    dense: list[Hit] = field(default_factory=list)
    lexical: list[Hit] = field(default_factory=list)
    generation: int = 0
    applied_seq: int = 0          # the answering replica's applied log sequence
    replica: str = ""             # the answering replica's address
    consistency_unmet: str = ""   # why min_applied_seq could not be honoured ("" = it was, or none was asked)
    # A packed answer: (score, id) per list, best first, and payloads by id; None = read `dense` / `lexical`.
    dense_pairs: list[tuple[float, str]] | None = None
    lexical_pairs: list[tuple[float, str]] | None = None
    payloads: dict[str, Hit] = field(default_factory=dict)

    def pairs(self, lexical: bool) -> list[tuple[float, str]]:
        """One list as (score, id), best first, whichever form the shard answered in."""
        packed = self.lexical_pairs if lexical else self.dense_pairs
        if packed is not None:
            return packed
        return [(h.score, h.id) for h in (self.lexical if lexical else self.dense)]

    def payload_map(self) -> dict[str, Hit]:
        """The payloads this answer carries, by id."""
        if self.dense_pairs is not None or self.lexical_pairs is not None:
            return self.payloads
        return {h.id: h for h in (*self.dense, *self.lexical) if h.text}


@dataclass
class ShardStats:
    name: str
    count: int
    generation: int
    index_factory: str = ""
    dimension: int = 0


class EmbedderPort(Protocol):
    async def embed(self, texts: list[str], *, query: bool, timeout: float | None) -> np.ndarray:
        """Unit vectors, one row per text, at the model's full dimension."""

    async def describe(self, timeout: float | None) -> dict[str, Any]:
        """{"model": ..., "dimension": ..., "device": ...}"""


class ShardPort(Protocol):
    name: str

    async def search(self, query: ShardQuery, timeout: float | None) -> ShardResult: ...
    def range_search(self, query: ShardRangeQuery, timeout: float | None) -> AsyncIterator[list[Hit]]: ...
    async def get(self, ids: list[str], timeout: float | None) -> tuple[list[Hit], list[str]]: ...
    async def stats(self, timeout: float | None) -> ShardStats: ...
    def watch(self) -> AsyncIterator[int]:
        """The shard's generation now and after every write, until the stream breaks."""


class RerankerPort(Protocol):
    async def rerank(self, query: str, candidates: list[Candidate], timeout: float | None,
                     depth: int = 0) -> list[float]:
        """One score per candidate, in the candidates' order (higher is better). depth > 0: a cascade, only the
        top `depth` by the previous stage are scored by the reranker's scorer (0 = the reranker's setting)."""

    async def describe(self, timeout: float | None) -> dict[str, Any]:
        """{"model": ..., "scorer": ..., "device": ...}"""
