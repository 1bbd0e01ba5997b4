"""SearchCore and WriteCore against in-process fakes of the embedder, shards and reranker (fast, no models)."""

import asyncio
import hashlib

import numpy as np
import pytest

from winnow.common.deadline import Deadline
from winnow.common.errors import Unavailable
from winnow.services.gateway import routing
from winnow.services.gateway.cache import MemoryBackend, ResultCache
from winnow.services.gateway.model import Mode, Retrieval, SearchOptions, SearchResult, WriteDocument
from winnow.services.gateway.ports import Hit, ShardResult, ShardStats
from winnow.services.gateway.search import SearchCore
from winnow.log import codec
from winnow.log.client import AppendResult
from winnow.services.gateway.consistency import decode_token
from winnow.services.gateway.writes import WriteCore

DIM = 16


def _vec(text: str) -> np.ndarray:
    """Bag-of-words hashing embedding: texts sharing words are similar."""
    v = np.zeros(DIM, dtype=np.float32)
    for w in text.lower().split():
        v[int(hashlib.md5(w.encode()).hexdigest(), 16) % DIM] += 1
    n = np.linalg.norm(v)
    return v / n if n else v


class FakeEmbedder:
    def __init__(self):
        self.calls = 0

    async def embed(self, texts, *, query, timeout):
        self.calls += 1
        return np.stack([_vec(t) for t in texts])

    async def describe(self, timeout):
        return {"model": "fake-embedder@1", "dimension": DIM, "device": "cpu"}


class FakeShard:
    def __init__(self, name):
        self.name = name
        self.target = name
        self.docs = {}
        self.generation = 0
        self.fail = False

    async def search(self, q, timeout):
        if self.fail:
            raise Unavailable(f"{self.name} down")
        dense = sorted((Hit(i, float(v @ q.vector), t, m) for i, (v, t, m) in self.docs.items()),
                       key=lambda h: (-h.score, h.id))[: q.k] if q.vector is not None else []
        words = set(q.query_text.lower().split())
        lex = [Hit(i, float(len(words & set(t.lower().split()))), t, m) for i, (v, t, m) in self.docs.items()]
        lex = sorted((h for h in lex if h.score > 0), key=lambda h: (-h.score, h.id))[: q.lexical_k or q.k]
        return ShardResult(dense, lex if q.query_text else [], self.generation)

    async def range_search(self, q, timeout):
        if self.fail:
            raise Unavailable(f"{self.name} down")
        hits = sorted((Hit(i, float(v @ q.vector), t, m) for i, (v, t, m) in self.docs.items()),
                      key=lambda h: (-h.score, h.id))
        hits = [h for h in hits if h.score >= q.threshold]
        for i in range(0, len(hits), q.page_size):
            yield hits[i:i + q.page_size]

    async def watch(self):
        raise Unavailable("no generation stream in this fake")

    async def get(self, ids, timeout):
        return [Hit(i, 0.0, self.docs[i][1]) for i in ids if i in self.docs], [i for i in ids if i not in self.docs]

    async def stats(self, timeout):
        if self.fail:
            raise Unavailable(f"{self.name} down")
        return ShardStats(self.name, len(self.docs), self.generation)


class FakeLog:
    """The document log in-process: appending to partition p applies to shard p at once (a replica that is
    never behind); partitions in `down` acknowledge nothing."""

    def __init__(self, shards):
        self.shards = shards
        self.down: set[int] = set()
        self.seq = {}

    async def append(self, layout, partition, messages, timeout):
        if partition in self.down:
            return AppendResult(partition, 0, len(messages), 0, "partition down")
        shard = self.shards[partition]
        for m in messages:
            r = codec.decode(m.body)
            if r.op == codec.OP_UPSERT:
                shard.docs[r.id] = (r.vector, r.text, r.metadata_json)
            else:
                shard.docs.pop(r.id, None)
            self.seq[partition] = self.seq.get(partition, 0) + 1
        shard.generation = self.seq[partition]
        return AppendResult(partition, len(messages), len(messages), self.seq[partition])


class FakeReranker:
    def __init__(self):
        self.fail = False
        self.calls = 0
        self.depths: list[int] = []

    async def rerank(self, query, candidates, timeout, depth=0):
        self.calls += 1
        self.depths.append(depth)
        if self.fail:
            raise Unavailable("reranker down")
        words = set(query.lower().split())
        # Prefers shorter texts with the same overlap: a different order than the first stage.
        return [len(words & set(c.text.lower().split())) - 0.01 * len(c.text.split()) for c in candidates]

    async def describe(self, timeout):
        return {"model": "fake-reranker", "scorer": "overlap"}


DOCS = [
    ("d1", "aspirin reduces fever in adults"),
    ("d2", "aspirin fever"),
    ("d3", "statins lower cholesterol levels"),
    ("d4", "vitamin d and bone density in older women"),
    ("d5", "fever and infection in children"),
    ("d6", "exercise improves heart health"),
]


@pytest.fixture
async def world():
    emb, rr = FakeEmbedder(), FakeReranker()
    shards = [FakeShard("shard-0"), FakeShard("shard-1")]
    writes = WriteCore(emb, shards, log=FakeLog(shards))
    await writes.upsert([WriteDocument(i, t) for i, t in DOCS], Deadline(10))
    core = SearchCore(emb, shards, rr, ResultCache(MemoryBackend(), ttl_s=60))
    await core.refresh_models()
    return core, writes, shards, rr


async def test_writes_route_by_stable_hash(world):
    core, writes, shards, _ = world
    for doc_id, _ in DOCS:
        assert doc_id in shards[routing.shard_for(doc_id, 2)].docs
    assert sum(len(s.docs) for s in shards) == len(DOCS)


async def test_writes_return_a_token_of_partition_sequences(world):
    _, writes, shards, _ = world
    n, _, token = await writes.upsert([WriteDocument("t1", "one"), WriteDocument("t2", "two")], Deadline(5))
    layout, seqs = decode_token(token)
    assert n == 2 and layout == "L0"
    assert seqs == {p: writes.log.seq[p] for p in {routing.shard_for(i, 2) for i in ("t1", "t2")}}
    deleted, _, token = await writes.delete(["t1"], Deadline(5))
    assert deleted == 1 and decode_token(token)[1] == {routing.shard_for("t1", 2): writes.log.seq[routing.shard_for("t1", 2)]}
    assert "t1" not in shards[routing.shard_for("t1", 2)].docs


async def test_precision_search_reranks_and_reports_ranks(world):
    core, *_ = world
    r = await core.search(SearchOptions(query="aspirin fever", k=3, window=6), Deadline(5))
    assert r.reranked and r.coverage.complete and not r.cache_hit
    assert r.hits[0].id == "d2"  # reranker prefers the shorter exact match
    assert all(h.first_stage_rank >= 1 for h in r.hits)
    assert {"embed", "search", "merge", "rerank", "total"} <= set(r.timings_ms)


async def test_second_identical_search_is_a_cache_hit_and_equal(world):
    core, *_ = world
    opts = SearchOptions(query="aspirin fever", k=3)
    a = await core.search(opts, Deadline(5))
    await core.cache.flush()
    b = await core.search(opts, Deadline(5))
    assert b.cache_hit and b.payload is not None
    cached = SearchResult.from_json(b.payload)
    assert [h.id for h in a.hits] == [h.id for h in cached.hits]
    assert [h.score for h in a.hits] == [h.score for h in cached.hits]


async def test_write_bumps_generation_so_cache_is_not_stale(world):
    core, writes, *_ = world
    opts = SearchOptions(query="cholesterol", k=2)
    await core.search(opts, Deadline(5))
    await core.cache.flush()
    await writes.upsert([WriteDocument("d9", "cholesterol cholesterol drugs")], Deadline(5))
    r = await core.search(opts, Deadline(5))
    assert not r.cache_hit
    assert "d9" in [h.id for h in r.hits]


async def test_failed_shard_gives_partial_coverage_not_an_error(world):
    core, _, shards, _ = world
    shards[1].fail = True
    r = await core.search(SearchOptions(query="fever", k=5), Deadline(5))
    assert (r.coverage.asked, r.coverage.answered) == (2, 1)
    assert r.coverage.failed and "shard-1" in r.coverage.failed[0]
    assert r.hits and all(h.id in shards[0].docs for h in r.hits)
    await core.cache.flush()
    shards[1].fail = False
    r2 = await core.search(SearchOptions(query="fever", k=5), Deadline(5))
    assert r2.coverage.complete and not r2.cache_hit  # the degraded answer was not cached


async def test_all_shards_down_is_unavailable(world):
    core, _, shards, _ = world
    for s in shards:
        s.fail = True
    with pytest.raises(Unavailable):
        await core.search(SearchOptions(query="fever"), Deadline(5))


async def test_reranker_down_returns_first_stage_order_flagged(world):
    core, _, _, rr = world
    rr.fail = True
    r = await core.search(SearchOptions(query="aspirin fever", k=3), Deadline(5))
    assert not r.reranked and "reranker" in r.rerank_skipped_reason
    assert [h.first_stage_rank for h in r.hits] == [1, 2, 3]
    assert all(h.rerank_score is None for h in r.hits)


async def test_rerank_batches_are_sent_concurrently(world):
    core, _, _, rr = world
    core.config.rerank_batch_size = 2  # the default (80) sends the whole window in one call
    await core.search(SearchOptions(query="fever aspirin children", k=5, window=6, no_cache=True), Deadline(5))
    assert rr.calls == 3


async def test_a_per_request_cascade_depth_goes_to_the_reranker_in_one_call_and_keys_the_cache(world):
    core, _, _, rr = world
    core.config.rerank_batch_size = 2  # would split the window; a cascade cut must see all of it
    await core.search(SearchOptions(query="fever aspirin children", k=5, window=6, rerank_depth=3), Deadline(5))
    assert rr.calls == 1 and rr.depths == [3]
    again = await core.search(SearchOptions(query="fever aspirin children", k=5, window=6), Deadline(5))
    assert not again.cache_hit and rr.depths[-1] == 0  # another depth is another answer


async def test_lexical_and_dense_only_modes(world):
    core, *_ = world
    lex = await core.search(SearchOptions(query="statins", retrieval=Retrieval.LEXICAL, rerank=False), Deadline(5))
    assert [h.id for h in lex.hits] == ["d3"] and lex.hits[0].lexical_rank == 1 and lex.hits[0].dense_rank == 0
    dense = await core.search(SearchOptions(query="statins", retrieval=Retrieval.DENSE, rerank=False, k=6),
                              Deadline(5))
    assert len(dense.hits) == 6 and all(h.lexical_rank == 0 for h in dense.hits)


async def test_bulk_returns_everything_above_threshold_in_pages(world):
    core, _, shards, _ = world
    opts = SearchOptions(query="fever", mode=Mode.BULK, threshold=0.1, page_size=2)
    pages = [p async for p in core.bulk(opts, Deadline(5), max_results=1000)]
    hits = [h for p in pages for h in p.hits]
    q = _vec("fever")
    expected = sorted((float(v @ q), i) for s in shards for i, (v, _, _) in s.docs.items() if float(v @ q) >= 0.1)
    assert sorted(h.id for h in hits) == sorted(i for _, i in expected)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert pages[-1].last and all(not p.last for p in pages[:-1]) and pages[-1].total == len(hits)
    assert all(len(p.hits) <= 2 for p in pages)


async def test_partial_write_failure_says_what_was_written(world):
    _, writes, shards, _ = world
    writes.log.down.add(1)
    docs = [WriteDocument(f"n{i}", f"new doc {i}") for i in range(20)]
    with pytest.raises(Unavailable) as err:
        await writes.upsert(docs, Deadline(5))
    on_ok = sum(routing.shard_for(d.id, 2) == 0 for d in docs)
    assert f"only {on_ok} of 20" in str(err.value) and "partition 1: 0 of" in str(err.value)


async def test_write_with_no_log_reachable_writes_nothing(world):
    _, writes, shards, _ = world
    writes.log.down.update({0, 1})
    with pytest.raises(Unavailable, match="nothing was upserted"):
        await writes.upsert([WriteDocument("x1", "x")], Deadline(5))


async def test_concurrent_identical_misses_compute_once(world):
    core, _, _, rr = world
    before = rr.calls
    opts = SearchOptions(query="bone density", k=2)
    results = await asyncio.gather(*(core.search(opts, Deadline(5)) for _ in range(4)))
    assert rr.calls - before == 1  # window 80 > 6 docs: one rerank batch for the one computation
    assert sum(r.cache_hit for r in results) == 3
