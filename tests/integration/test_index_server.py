"""One index shard replica over real gRPC (a GrpcService on port 0 in the test process, a real client channel),
fed through a real nats-server: documents are written to its log partition, never to the shard."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from winnow.api.internal.index.v1 import index_pb2 as pb
from winnow.api.internal.index.v1 import index_pb2_grpc as pb_grpc
from tests.conftest import unique_layout
from winnow.rpc.channels import make_channel
from winnow.log import codec
from winnow.log.client import DocumentLog, LogConfig, Message
from winnow.services.index.__main__ import build
from winnow.services.index.settings import IndexSettings

DIM = 16
TIMEOUT = 10.0


def vec(seed: int) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(DIM)
    return (v / np.linalg.norm(v)).tolist()


async def wait_serving(channel: grpc.aio.Channel, service: str = "") -> None:
    """Block on the health Watch stream until SERVING (no sleeps)."""
    stub = health_pb2_grpc.HealthStub(channel)
    async for resp in stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=60, wait_for_ready=True):
        if resp.status == health_pb2.HealthCheckResponse.SERVING:
            return


class Replica:
    """One in-process replica following partition 0 of a private layout; `write`/`delete` go through the log
    and return once the replica applied them."""

    def __init__(self, stub, servicer, doc_log: DocumentLog, layout: str) -> None:
        self.stub, self.servicer, self.log, self.layout = stub, servicer, doc_log, layout

    async def _append(self, messages: list[Message]) -> int:
        res = await self.log.append(self.layout, 0, messages, TIMEOUT)
        assert res.complete, res.error
        assert await self.servicer.follower.wait_applied(res.last_seq, TIMEOUT)
        return res.last_seq

    async def write(self, documents: list[pb.Document]) -> int:
        return await self._append([Message(d.id, codec.encode_upsert(d.id, np.asarray(d.vector, np.float32),
                                                                      d.text, d.metadata_json)) for d in documents])

    async def delete(self, ids: list[str]) -> int:
        return await self._append([Message(i, codec.encode_delete(i), tombstone=True) for i in ids])


@pytest.fixture
async def replica(tmp_path, nats_server):
    layout = unique_layout()
    settings = IndexSettings(data_dir=str(tmp_path / "shard"), dim=DIM, fsync=False, coarse_dims=[8],
                             max_k=100, default_page_size=7, health_interval_s=0.2, log_url=nats_server.url,
                             layout=layout, max_consistency_wait_s=0.3)
    wiring = build(settings)
    svc, servicer = wiring.service, wiring.servicer
    await svc.start()
    await wiring.warmup()
    await svc.mark_ready()
    channel = make_channel(f"127.0.0.1:{svc.port}")
    await wait_serving(channel, "winnow.index.v1.IndexShard")
    writer = DocumentLog(LogConfig(url=nats_server.url))
    yield Replica(pb_grpc.IndexShardStub(channel), servicer, writer, layout)
    await writer.close()
    await channel.close()
    await svc.drain(0)
    await wiring.close()


@pytest.fixture
def stub(replica):
    return replica.stub


def docs(n: int, start: int = 0) -> list[pb.Document]:
    return [
        pb.Document(id=f"d{i}", vector=vec(i), text=f"paper {i} about {'cells' if i % 2 else 'proteins'}",
                    metadata_json=json.dumps({"year": 2000 + i % 5, "odd": bool(i % 2)}))
        for i in range(start, start + n)
    ]


async def test_write_read_search_cycle(replica, stub):
    seq = await replica.write(docs(50))
    stats = await stub.Stats(pb.StatsRequest(), timeout=TIMEOUT)
    assert (stats.count, stats.generation, stats.dimension, stats.index_factory) == (50, seq, DIM, "HNSW32,Flat")
    assert stats.trained and stats.device == "cpu"
    assert stats.applied_seq == seq == 50 and stats.caught_up and stats.layout == replica.layout

    res = await stub.Search(pb.SearchRequest(vector=vec(4), k=5, query_text="proteins", lexical_k=3,
                                             include_payloads=True), timeout=TIMEOUT)
    assert res.dense[0].id == "d4" and res.dense[0].score == pytest.approx(1.0, abs=1e-5)
    assert res.dense[0].text == "paper 4 about proteins" and json.loads(res.dense[0].metadata_json)["year"] == 2004
    assert len(res.lexical) == 3 and all("proteins" in h.text for h in res.lexical)
    assert res.applied_seq == seq and {"dense", "lexical", "queue"} <= set(res.timings_ms)

    filt = pb.Filter(field="year", equals=struct_pb2.Value(number_value=2003))
    res = await stub.Search(pb.SearchRequest(vector=vec(4), k=20, filters=[filt]), timeout=TIMEOUT)
    assert len(res.dense) == 10 and all(int(h.id[1:]) % 5 == 3 for h in res.dense)

    got = await stub.Get(pb.GetRequest(ids=["d1", "zz"]), timeout=TIMEOUT)
    assert [d.id for d in got.documents] == ["d1"] and list(got.missing) == ["zz"]

    seq = await replica.delete(["d4", "zz"])
    res = await stub.Search(pb.SearchRequest(vector=vec(4), k=50), timeout=TIMEOUT)
    assert "d4" not in {h.id for h in res.dense} and len(res.dense) == 49 and res.applied_seq == seq == 52


async def test_quick_searches_run_on_the_event_loop_and_slow_ones_on_the_search_threads(replica, stub):
    await replica.write(docs(30))
    req = pb.SearchRequest(vector=vec(3), k=5, query_text="cells", lexical_k=5)
    first = await stub.Search(req, timeout=TIMEOUT)  # BM25 is due a rebuild after the writes: on a thread
    assert "queue" in first.timings_ms and "bm25_rebuild" in first.timings_ms
    second = await stub.Search(req, timeout=TIMEOUT)  # quick and nothing to wait for: inline, no hand-off
    assert "queue" not in second.timings_ms and [h.id for h in second.dense] == [h.id for h in first.dense]
    assert 0 < replica.servicer.search_ms < replica.servicer.inline_search_ms
    replica.servicer.search_ms = replica.servicer.inline_search_ms + 1  # as if recent searches had been slow
    slow = await stub.Search(req, timeout=TIMEOUT)
    assert "queue" in slow.timings_ms and [h.id for h in slow.lexical] == [h.id for h in second.lexical]


async def test_min_applied_seq_waits_then_fails_precondition(replica, stub):
    seq = await replica.write(docs(3))
    res = await stub.Search(pb.SearchRequest(vector=vec(1), k=1, min_applied_seq=seq), timeout=TIMEOUT)
    assert res.applied_seq >= seq
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Search(pb.SearchRequest(vector=vec(1), k=1, min_applied_seq=seq + 100), timeout=TIMEOUT)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"replica at seq {seq}, needs {seq + 100}" in err.value.details()


async def test_an_update_replaces_the_document_and_the_log_keeps_one_version(replica, stub):
    await replica.write(docs(5))
    changed = pb.Document(id="d2", vector=vec(99), text="rewritten", metadata_json="{}")
    await replica.write([changed])
    res = await stub.Search(pb.SearchRequest(vector=vec(99), k=1, include_payloads=True), timeout=TIMEOUT)
    assert res.dense[0].id == "d2" and res.dense[0].text == "rewritten"
    head = await replica.log.head(replica.layout, 0)
    assert (head.messages, head.last_seq) == (5, 6)  # compaction: one message per document


async def test_range_search_streams_pages(replica, stub):
    await replica.write(docs(40))
    pages = [p async for p in stub.RangeSearch(pb.RangeSearchRequest(vector=vec(0), threshold=-1.0,
                                                                     include_payloads=True), timeout=TIMEOUT)]
    assert len(pages) == 6 and pages[-1].last and not pages[0].last
    hits = [h for p in pages for h in p.hits]
    assert len(hits) == 40 == pages[0].total and hits[0].id == "d0" and hits[0].text
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    odd = pb.Filter(field="odd", equals=struct_pb2.Value(bool_value=True))
    pages = [p async for p in stub.RangeSearch(pb.RangeSearchRequest(vector=vec(0), threshold=-1.0, page_size=100,
                                                                     filters=[odd], coarse_dim=8), timeout=TIMEOUT)]
    assert pages[0].total == 20


async def test_watch_streams_applied_sequences(replica, stub):
    stream = stub.Watch(pb.WatchRequest(), timeout=TIMEOUT)
    first = await stream.read()
    assert (first.generation, first.count) == (0, 0)
    await replica.write(docs(3))
    second = await stream.read()
    while second.count < 3:  # the three messages may apply in more than one batch
        second = await stream.read()
    assert (second.generation, second.applied_seq, second.count) == (3, 3, 3)
    await replica.delete(["d0"])
    third = await stream.read()
    assert (third.generation, third.count) == (4, 2)
    stream.cancel()


async def test_train_on_flat_index_is_a_no_op(stub):
    r = await stub.Train(pb.TrainRequest(), timeout=TIMEOUT)
    assert r.trained and r.generation == 0


BAD = [
    (pb.SearchRequest(vector=vec(1), k=0), "at least 1"),
    (pb.SearchRequest(vector=vec(1), k=101), "max_k"),
    (pb.SearchRequest(vector=vec(1)[:-1], k=3), "dimension"),
    (pb.SearchRequest(vector=vec(1), k=3, filters=[pb.Filter(field="a")]), "string, number or bool"),
    (pb.SearchRequest(vector=vec(1), k=3, filters=[pb.Filter(
        field="a", equals=struct_pb2.Value(null_value=struct_pb2.NULL_VALUE))]), "null_value"),
    (pb.SearchRequest(vector=vec(1), k=3, filters=[pb.Filter(
        field="a", equals=struct_pb2.Value(list_value=struct_pb2.ListValue()))]), "list_value"),
]


@pytest.mark.parametrize(("request_", "message"), BAD)
async def test_bad_input_is_invalid_argument(replica, stub, request_, message):
    await replica.write(docs(3))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Search(request_, timeout=TIMEOUT)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in err.value.details()
    stats = await stub.Stats(pb.StatsRequest(), timeout=TIMEOUT)
    assert (stats.count, stats.generation) == (3, 3)


async def test_a_message_replicas_cannot_apply_is_skipped_not_fatal(replica, stub):
    bad = pb.Document(id="x", vector=[1.0] * (DIM - 1), text="wrong dimension")
    await replica.write([bad, *docs(2)])
    stats = await stub.Stats(pb.StatsRequest(), timeout=TIMEOUT)
    assert (stats.count, stats.generation) == (2, 3) and replica.servicer.shard.skipped == 1


async def test_bad_range_threshold(stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.RangeSearch(pb.RangeSearchRequest(vector=vec(1), threshold=1.5), timeout=TIMEOUT):
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "[-1, 1]" in err.value.details()
