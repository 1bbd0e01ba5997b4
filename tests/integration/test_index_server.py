"""The index shard over real gRPC: a GrpcService on port 0 in the test process and a real client channel."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from winnow.api.internal.index.v1 import index_pb2 as pb
from winnow.api.internal.index.v1 import index_pb2_grpc as pb_grpc
from winnow.rpc.channels import make_channel
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


@pytest.fixture
async def stub(tmp_path):
    settings = IndexSettings(data_dir=str(tmp_path / "shard"), dim=DIM, fsync=False, coarse_dims=[8],
                             max_k=100, default_page_size=7, health_interval_s=0.2)
    wiring = build(settings)
    svc = wiring.service
    await svc.start()
    await wiring.warmup()
    await svc.mark_ready()
    channel = make_channel(f"127.0.0.1:{svc.port}")
    await wait_serving(channel, "winnow.index.v1.IndexShard")
    yield pb_grpc.IndexShardStub(channel)
    await channel.close()
    await svc.drain(0)
    await wiring.close()


def docs(n: int, start: int = 0) -> list[pb.Document]:
    return [
        pb.Document(id=f"d{i}", vector=vec(i), text=f"paper {i} about {'cells' if i % 2 else 'proteins'}",
                    metadata_json=json.dumps({"year": 2000 + i % 5, "odd": bool(i % 2)}))
        for i in range(start, start + n)
    ]


async def test_write_read_search_cycle(stub):
    up = await stub.Upsert(pb.UpsertRequest(documents=docs(50)), timeout=TIMEOUT)
    assert up.upserted == 50 and up.generation == 1 and "wal" in up.timings_ms
    stats = await stub.Stats(pb.StatsRequest(), timeout=TIMEOUT)
    assert (stats.count, stats.generation, stats.dimension, stats.index_factory) == (50, 1, DIM, "HNSW32,Flat")
    assert stats.trained and stats.device == "cpu"

    res = await stub.Search(pb.SearchRequest(vector=vec(4), k=5, query_text="proteins", lexical_k=3,
                                             include_payloads=True), timeout=TIMEOUT)
    assert res.dense[0].id == "d4" and res.dense[0].score == pytest.approx(1.0, abs=1e-5)
    assert res.dense[0].text == "paper 4 about proteins" and json.loads(res.dense[0].metadata_json)["year"] == 2004
    assert len(res.lexical) == 3 and all("proteins" in h.text for h in res.lexical)
    assert res.generation == 1 and {"dense", "lexical", "queue"} <= set(res.timings_ms)

    filt = pb.Filter(field="year", equals=struct_pb2.Value(number_value=2003))
    res = await stub.Search(pb.SearchRequest(vector=vec(4), k=20, filters=[filt]), timeout=TIMEOUT)
    assert len(res.dense) == 10 and all(int(h.id[1:]) % 5 == 3 for h in res.dense)

    got = await stub.Get(pb.GetRequest(ids=["d1", "zz"]), timeout=TIMEOUT)
    assert [d.id for d in got.documents] == ["d1"] and list(got.missing) == ["zz"]

    deleted = await stub.Delete(pb.DeleteRequest(ids=["d4", "zz"]), timeout=TIMEOUT)
    assert deleted.deleted == 1 and deleted.generation == 2
    res = await stub.Search(pb.SearchRequest(vector=vec(4), k=50), timeout=TIMEOUT)
    assert "d4" not in {h.id for h in res.dense} and len(res.dense) == 49


async def test_range_search_streams_pages(stub):
    await stub.Upsert(pb.UpsertRequest(documents=docs(40)), timeout=TIMEOUT)
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


async def test_watch_streams_generations(stub):
    stream = stub.Watch(pb.WatchRequest(), timeout=TIMEOUT)
    first = await stream.read()
    assert (first.generation, first.count) == (0, 0)
    await stub.Upsert(pb.UpsertRequest(documents=docs(3)), timeout=TIMEOUT)
    second = await stream.read()
    assert (second.generation, second.count) == (1, 3)
    await stub.Delete(pb.DeleteRequest(ids=["d0"]), timeout=TIMEOUT)
    third = await stream.read()
    assert (third.generation, third.count) == (2, 2)
    stream.cancel()


async def test_train_on_flat_index_is_a_no_op(stub):
    r = await stub.Train(pb.TrainRequest(), timeout=TIMEOUT)
    assert r.trained and r.generation == 0


BAD = [
    ("Upsert", pb.UpsertRequest(documents=[pb.Document(id="x", vector=[1.0] * (DIM - 1))]), "dimension"),
    ("Upsert", pb.UpsertRequest(documents=[pb.Document(id="x", vector=[float("nan")] * DIM)]), "NaN"),
    ("Upsert", pb.UpsertRequest(documents=[pb.Document(id="", vector=vec(1))]), "empty"),
    ("Upsert", pb.UpsertRequest(documents=[pb.Document(id="x", vector=vec(1), metadata_json="3")]), "JSON object"),
    ("Upsert", pb.UpsertRequest(documents=[pb.Document(id="x", vector=vec(1), text="y" * 70_000)]), "payload"),
    ("Search", pb.SearchRequest(vector=vec(1), k=0), "at least 1"),
    ("Search", pb.SearchRequest(vector=vec(1), k=101), "max_k"),
    ("Search", pb.SearchRequest(vector=vec(1), k=3, filters=[pb.Filter(field="a")]), "string, number or bool"),
    ("Search", pb.SearchRequest(vector=vec(1), k=3, filters=[pb.Filter(
        field="a", equals=struct_pb2.Value(null_value=struct_pb2.NULL_VALUE))]), "null_value"),
    ("Search", pb.SearchRequest(vector=vec(1), k=3, filters=[pb.Filter(
        field="a", equals=struct_pb2.Value(list_value=struct_pb2.ListValue()))]), "list_value"),
    ("Delete", pb.DeleteRequest(ids=[""]), "empty"),
]


@pytest.mark.parametrize(("method", "request_", "message"), BAD)
async def test_bad_input_is_invalid_argument(stub, method, request_, message):
    await stub.Upsert(pb.UpsertRequest(documents=docs(3)), timeout=TIMEOUT)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(stub, method)(request_, timeout=TIMEOUT)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in err.value.details()
    stats = await stub.Stats(pb.StatsRequest(), timeout=TIMEOUT)
    assert (stats.count, stats.generation) == (3, 1)


async def test_bad_range_threshold(stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.RangeSearch(pb.RangeSearchRequest(vector=vec(1), threshold=1.5), timeout=TIMEOUT):
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "[-1, 1]" in err.value.details()
