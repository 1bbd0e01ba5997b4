"""payloads=final: shards send ids and scores only, the gateway fetches the payloads of the returned hits."""

import dataclasses

from tests.unit.test_gateway_search import DOCS, FakeEmbedder, FakeLog, FakeReranker, FakeShard
from winnow.common.deadline import Deadline
from winnow.common.errors import Unavailable
from winnow.services.gateway.cache import MemoryBackend, ResultCache
from winnow.services.gateway.model import SearchOptions, WriteDocument
from winnow.services.gateway.search import PipelineConfig, SearchCore
from winnow.services.gateway.writes import WriteCore


class IdsOnlyShard(FakeShard):
    """Honours include_payloads=False as the real shard does, and records what the gateway fetched."""

    def __init__(self, name):
        super().__init__(name)
        self.fetched: list[list[str]] = []
        self.fail_get = False

    async def search(self, q, timeout):
        res = await super().search(q, timeout)
        if not q.include_payloads:
            strip = lambda hits: [dataclasses.replace(h, text="", metadata_json="") for h in hits]  # noqa: E731
            res = dataclasses.replace(res, dense=strip(res.dense), lexical=strip(res.lexical))
        return res

    async def get(self, ids, timeout):
        if self.fail_get:
            raise Unavailable(f"{self.name} down")
        self.fetched.append(list(ids))
        return await super().get(ids, timeout)


async def _core():
    emb, shards = FakeEmbedder(), [IdsOnlyShard("shard-0"), IdsOnlyShard("shard-1")]
    await WriteCore(emb, shards, log=FakeLog(shards)).upsert([WriteDocument(i, t) for i, t in DOCS], Deadline(10))
    core = SearchCore(emb, shards, FakeReranker(), ResultCache(MemoryBackend(), ttl_s=60),
                      PipelineConfig(payloads="final"))
    await core.refresh_models()
    return core, shards


async def test_only_the_returned_hits_payloads_are_fetched():
    core, shards = await _core()
    r = await core.search(SearchOptions(query="aspirin fever", k=2, window=6, rerank=False, no_cache=True), Deadline(5))
    assert len(r.hits) == 2 and all(h.text == dict(DOCS)[h.id] for h in r.hits)
    assert sorted(i for s in shards for call in s.fetched for i in call) == sorted(h.id for h in r.hits)
    assert "fetch" in r.timings_ms


async def test_reranking_fetches_the_window_and_a_failed_fetch_is_reported():
    core, shards = await _core()
    r = await core.search(SearchOptions(query="aspirin fever", k=2, window=6, no_cache=True), Deadline(5))
    assert r.reranked and all(h.text for h in r.hits)
    shards[0].fail_get = True
    r = await core.search(SearchOptions(query="fever", k=6, window=6, rerank=False, no_cache=True), Deadline(5))
    assert not r.coverage.complete and any("payloads" in f for f in r.coverage.failed)
    assert all(h.text for h in r.hits)  # the hits of the failed shard are left out, never returned empty
