"""kill -9 in the middle of a stream of acknowledged writes: a real `python -m winnow.services.index` process,
fsync on, snapshots rotating during the stream. After a restart on the same data_dir every acknowledged write is
there and nothing is half-written."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from winnow.api.internal.index.v1 import index_pb2 as pb
from winnow.api.internal.index.v1 import index_pb2_grpc as pb_grpc
from winnow.rpc.channels import make_channel

DIM = 32


def vec(seed: int) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(DIM)
    return (v / np.linalg.norm(v)).tolist()


def text_of(i: int) -> str:
    return f"document {i} " + "word " * (i % 50)  # records of varied length: tears land anywhere


class ShardProcess:
    """The service as a subprocess; its port comes from its own 'listening' log line (no fixed ports)."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task | None = None
        self.port = 0

    async def start(self) -> grpc.aio.Channel:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "winnow.services.index", "--port", "0", "--data-dir", self.data_dir,
            "--dim", str(DIM), "--snapshot-every", "25", "--fsync", "--health-interval-s", "0.5",
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "WINNOW_INDEX_COARSE_DIMS": "8"},
        )
        assert self.proc.stderr is not None
        seen: list[bytes] = []
        while not self.port:
            line = await asyncio.wait_for(self.proc.stderr.readline(), 60)
            if not line:
                raise RuntimeError(f"index service exited ({await self.proc.wait()}):\n{b''.join(seen).decode()}")
            seen.append(line)
            try:
                record = json.loads(line)
            except ValueError:
                continue
            self.port = int(record.get("grpc_port", 0)) if record.get("msg") == "listening" else 0
        self._drain = asyncio.create_task(self._discard(self.proc.stderr))
        channel = make_channel(f"127.0.0.1:{self.port}", retries=False)
        health = health_pb2_grpc.HealthStub(channel)
        async for resp in health.Watch(health_pb2.HealthCheckRequest(), timeout=60, wait_for_ready=True):
            if resp.status == health_pb2.HealthCheckResponse.SERVING:
                break
        return channel

    @staticmethod
    async def _discard(stream: asyncio.StreamReader) -> None:
        while await stream.readline():
            pass

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        if self._drain is not None:
            await self._drain


async def _writer(stub, worker: int, acked: dict, deleted: set, started: asyncio.Event, count: list) -> None:
    """Upsert ids of this worker one by one; every fourth write also deletes one of its earlier ids."""
    i = 0
    while True:
        n = worker * 100_000 + i
        try:
            await stub.Upsert(pb.UpsertRequest(documents=[pb.Document(
                id=f"d{n}", vector=vec(n), text=text_of(n), metadata_json=json.dumps({"n": n}))]), timeout=10)
            acked[f"d{n}"] = n
            if i % 4 == 3:
                victim = f"d{n - 2}"
                await stub.Delete(pb.DeleteRequest(ids=[victim]), timeout=10)
                deleted.add(victim)
        except grpc.aio.AioRpcError:
            return  # the process is gone: this write was never acknowledged
        count[0] += 1
        if count[0] >= 120:
            started.set()
        i += 1


async def test_sigkill_mid_stream_loses_no_acknowledged_write(tmp_path):
    shard = ShardProcess(str(tmp_path / "shard"))
    channel = await shard.start()
    stub = pb_grpc.IndexShardStub(channel)
    acked: dict[str, int] = {}
    deleted: set[str] = set()
    enough = asyncio.Event()
    count = [0]
    writers = [asyncio.create_task(_writer(stub, w, acked, deleted, enough, count)) for w in range(4)]
    await asyncio.wait_for(enough.wait(), 120)
    await shard.kill()  # writes are in flight right now
    await asyncio.gather(*writers)
    await channel.close()
    acked_snapshot = dict(acked)

    again = ShardProcess(shard.data_dir)
    channel = await again.start()
    stub = pb_grpc.IndexShardStub(channel)
    must_exist = [i for i in acked_snapshot if i not in deleted]
    got = await stub.Get(pb.GetRequest(ids=must_exist), timeout=30)
    assert list(got.missing) == [], "acknowledged writes lost"
    for hit in got.documents:
        n = acked_snapshot[hit.id]
        assert hit.text == text_of(n) and json.loads(hit.metadata_json) == {"n": n}
    gone = await stub.Get(pb.GetRequest(ids=sorted(deleted)), timeout=30)
    assert len(gone.documents) == 0, "acknowledged deletes undone"

    # nothing half-written: every document the shard holds is complete and findable by its own vector
    stats = await stub.Stats(pb.StatsRequest(), timeout=10)
    assert stats.count >= len(must_exist)
    pages = [p async for p in stub.RangeSearch(pb.RangeSearchRequest(vector=vec(0), threshold=-1.0,
                                                                     include_payloads=True, page_size=1000), timeout=30)]
    held = [h for p in pages for h in p.hits]
    assert len(held) == stats.count
    for hit in held:
        n = int(hit.id[1:])
        assert hit.text == text_of(n) and json.loads(hit.metadata_json) == {"n": n}
    sample = held[:: max(1, len(held) // 20)]
    for hit in sample:
        res = await stub.Search(pb.SearchRequest(vector=vec(int(hit.id[1:])), k=1), timeout=10)
        assert res.dense[0].id == hit.id and res.dense[0].score == pytest.approx(1.0, abs=1e-4)
    assert stats.generation >= len(acked_snapshot) + len(deleted)

    # and it keeps taking writes after recovery
    up = await stub.Upsert(pb.UpsertRequest(documents=[pb.Document(id="after", vector=vec(1))]), timeout=10)
    assert up.generation == stats.generation + 1
    await channel.close()
    await again.kill()
