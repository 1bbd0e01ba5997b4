"""Feedback end to end.

In process (fast): the real servicer and gRPC edge over an in-memory feedback log, through the blocking and the
asyncio client: typed results, the server's own field violations, a batch split to the server's limit, and an
export stream cut by UNAVAILABLE resumed after its last record.

Real processes: a nats-server (JetStream, file storage) and `python -m winnow.services.gateway`. Judgments
recorded through the client and the CLI survive kill -9 of nats-server and a gateway restart (the export is the
same, record for record); with the log down, Feedback is UNAVAILABLE within the connect bound and claims nothing;
the exported file is accepted by `winnow.train.judgments.from_file` against a small BEIR corpus.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from tests.conftest import free_port
from tests.unit.test_feedback import MemoryLog, small_beir
from tests.unit.test_gateway_search import FakeEmbedder, FakeLog, FakeShard
from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.api.gateway.v1 import gateway_pb2_grpc
from winnow.cli import main
from winnow.client import NO_RETRY, AsyncWinnowClient, Judgment, RetryPolicy, WinnowClient, training_pairs
from winnow.client.errors import InvalidArgumentError, UnavailableError, from_rpc_error
from winnow.cluster.nats import single
from winnow.common.errors import Unavailable
from winnow.rpc.server import GrpcService
from winnow.services.gateway.cache import MemoryBackend, ResultCache
from winnow.services.gateway.feedback import FeedbackCore
from winnow.services.gateway.search import SearchCore
from winnow.services.gateway.server import GatewayServicer
from winnow.services.gateway.settings import GatewaySettings
from winnow.services.gateway.writes import WriteCore
from winnow.train.judgments import from_file, load_dataset_corpus

FAST_RETRY = RetryPolicy(max_attempts=5, initial_backoff_s=0.01, max_backoff_s=0.05)


# -- in process -------------------------------------------------------------------------------------------------

class CutExport(GatewayServicer):
    """The real servicer; the next export fails with UNAVAILABLE after `cut_after` records."""

    cut_after = 0
    exports: list[int] = []

    async def ExportFeedback(self, request, context):
        cut, type(self).cut_after = self.cut_after, 0
        self.exports.append(request.after_seq)
        sent = 0
        async for record in super().ExportFeedback(request, context):
            if cut and sent == cut:
                raise Unavailable("feedback log connection reset (injected)")
            sent += 1
            yield record


class InProcess:
    """A gateway on a background loop (blocking clients call it from the test thread)."""

    def __init__(self) -> None:
        self.settings = GatewaySettings(host="127.0.0.1", port=0, max_write_docs=3)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.log = MemoryLog()

    async def _start(self) -> None:
        shards = [FakeShard("shard-0")]
        search = SearchCore(FakeEmbedder(), shards, None, ResultCache(MemoryBackend(), ttl_s=60))
        writes = WriteCore(FakeEmbedder(), shards, log=FakeLog(shards))
        self.servicer = CutExport(search, writes, self.settings, FeedbackCore(self.log))

        def register(server):
            gateway_pb2_grpc.add_GatewayServicer_to_server(self.servicer, server)
            return ["winnow.gateway.v1.Gateway"]

        self.svc = GrpcService("gateway", self.settings, register)
        self.port = await self.svc.start()
        await self.svc.mark_ready()

    def __enter__(self) -> "InProcess":
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.svc.drain(0), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def gateway():
    with InProcess() as g:
        yield g


def test_sync_and_async_clients_record_and_export_the_same(gateway):
    judged = [Judgment("d1", 2), Judgment("d2", 0), Judgment.click("d1")]
    with WinnowClient(gateway.target, retry=FAST_RETRY) as w:
        r = w.feedback("q-sync", "aspirin and fever", judged)
        records = [x for x in w.export_feedback() if x.query_id == "q-sync"]
    assert (r.recorded, r.requests, len(r.request_ids)) == (3, 1, 1) and r.request_ids[0]
    assert [(x.doc_id, x.kind, x.relevance, x.query) for x in records] == [
        ("d1", "judgment", 2, "aspirin and fever"), ("d2", "judgment", 0, "aspirin and fever"),
        ("d1", "click", 1, "aspirin and fever")]
    assert all(x.seq > 0 and x.recorded_at_ms > 1_600_000_000_000 for x in records)

    async def run():
        async with AsyncWinnowClient(gateway.target, retry=FAST_RETRY) as w:
            res = await w.feedback("q-async", "aspirin and fever", [{"doc_id": "d1", "relevance": 2}])
            return res, [x async for x in w.export_feedback()]

    res, every = asyncio.run(run())
    assert res.recorded == 1 and [x.doc_id for x in every if x.query_id == "q-async"] == ["d1"]
    assert training_pairs(x for x in every if x.query_id == "q-sync") == [
        {"query": "aspirin and fever", "query_id": "q-sync", "doc_id": "d1", "relevance": 2},
        {"query": "aspirin and fever", "query_id": "q-sync", "doc_id": "d2", "relevance": 0}]


def test_the_server_names_the_field_and_records_nothing_of_a_bad_batch(gateway):
    before = len(gateway.log.subjects)
    with WinnowClient(gateway.target) as w:
        bad = pb.FeedbackRequest(query_id="q-bad", query="x", judgments=[
            pb.Judgment(doc_id="d1", relevance=1), pb.Judgment(doc_id="d2", relevance=500)])
        with pytest.raises(grpc.RpcError) as raw:
            w.stub.Feedback(bad, timeout=5)  # the raw stub: past the client's own checks
        err = from_rpc_error(raw.value)
        assert isinstance(err, InvalidArgumentError) and err.reason == "BAD_RELEVANCE"
        assert err.field_violations[0][0] == "judgments[1].relevance" and err.info["limit"] == "100"
        with pytest.raises(InvalidArgumentError) as local:
            w.feedback("q-bad", "x", [Judgment("d1", 1, kind="like")])
        assert local.value.reason == "CLIENT_VALIDATION"
    assert len(gateway.log.subjects) == before


def test_a_batch_over_the_server_limit_is_split(gateway):
    with WinnowClient(gateway.target, retry=FAST_RETRY) as w:
        r = w.feedback("q-big", "a long list", [Judgment(f"d{i}", i % 3) for i in range(7)])
        assert (r.recorded, r.requests) == (7, 3)  # max_write_docs=3: refused once, limits fetched, re-split
        assert len([x for x in w.export_feedback() if x.query_id == "q-big"]) == 7


def test_a_cut_export_resumes_after_its_last_record(gateway):
    with WinnowClient(gateway.target, retry=FAST_RETRY) as w:
        w.feedback("q-cut", "resume me", [Judgment(f"c{i}", 1) for i in range(3)])
        whole = [x.seq for x in w.export_feedback()]
        CutExport.cut_after, CutExport.exports = 2, []
        resumed = [x.seq for x in w.export_feedback()]
    assert resumed == whole and len(set(whole)) == len(whole)
    assert CutExport.exports == [0, whole[1]]  # the second stream started after the second record


# -- real processes ---------------------------------------------------------------------------------------------

class GatewayProcess:
    """`python -m winnow.services.gateway` on the log only: no shard or embedder answers (feedback needs none)."""

    def __init__(self, workdir: Path, log_url: str, name: str) -> None:
        self.ready = workdir / f"{name}.ready.json"
        self.log = workdir / f"{name}.log"
        cmd = [sys.executable, "-m", "winnow.services.gateway", "--host", "127.0.0.1", "--port", "0",
               "--ready-file", str(self.ready), "--log-url", log_url, "--log-connect-timeout-s", "0.5",
               "--shards", f"127.0.0.1:{free_port()}", "--embedder", f"127.0.0.1:{free_port()}", "--reranker", "",
               "--cache", "off", "--embedder-wait-s", "0", "--drain-grace-s", "0.2"]
        with open(self.log, "ab") as fh:
            self.popen = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
        end = time.monotonic() + 60
        while not self.ready.exists():
            assert self.popen.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < end, "gateway not ready in 60 s:\n" + self.log.read_text()[-3000:]
            time.sleep(0.02)  # polling the file the gateway writes once it serves
        self.target = f"127.0.0.1:{json.loads(self.ready.read_text())['port']}"

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


@pytest.fixture
def nats_node(tmp_path):
    node = single(tmp_path).start().wait()
    yield node
    node.stop(grace=3)


def _rows(records) -> list[dict]:
    return [r.to_json() for r in records]


def test_feedback_survives_nats_kill9_and_a_gateway_restart(nats_node, tmp_path, capsys):
    root, ids = small_beir(tmp_path)
    patient = RetryPolicy(max_attempts=30, initial_backoff_s=0.05, max_backoff_s=0.5)
    a = GatewayProcess(tmp_path, nats_node.url, "gateway-a")
    try:
        with WinnowClient(a.target, retry=patient, timeout=30) as w:
            assert list(w.export_feedback()) == []  # nothing recorded yet: the stream does not even exist
            assert w.feedback("q1", "vitamin d and fractures",
                              [Judgment(ids[0], 2), Judgment(ids[1], 0), Judgment.click(ids[2])]).recorded == 3
            assert w.feedback("q1", "vitamin d and fractures", [Judgment(ids[1], 1)]).recorded == 1  # replaces
            assert w.feedback("q2", "statins", [Judgment.click(ids[3]), Judgment.click(ids[1])]).recorded == 2
        assert main(["feedback", "add", "--target", a.target, "--query-id", "q2", "--query", "statins",
                     f"{ids[1]}=0"]) == 0
        assert main(["feedback", "add", "--target", a.target, "--query-id", "q3", "--query", "insulin", "--click",
                     ids[4]]) == 0
        with WinnowClient(a.target, timeout=30) as w:
            before = _rows(w.export_feedback())
        assert len(before) == 7 and [r["seq"] for r in before] == sorted(r["seq"] for r in before)
        latest = {(r["query_id"], r["doc_id"], r["kind"]): r["relevance"] for r in before}
        assert latest[("q1", ids[1], "judgment")] == 1  # the second judgment replaced the first

        nats_node.kill(signal.SIGKILL)  # the log dies; gateway A is connected to it
        with WinnowClient(a.target, retry=NO_RETRY, timeout=5) as w:
            for bound in (5.0, 1.0):  # the first call may find the connection just cut; the next one at once
                t0 = time.monotonic()
                with pytest.raises(UnavailableError) as err:
                    w.feedback("q9", "during the outage", [Judgment(ids[5], 1)])
                assert time.monotonic() - t0 < bound
                assert "recorded" in err.value.details() and "only" not in err.value.details()
            with pytest.raises(UnavailableError):
                list(w.export_feedback())
    finally:
        a.stop()

    b = GatewayProcess(tmp_path, nats_node.url, "gateway-b")  # a restarted gateway, the log still down
    try:
        with WinnowClient(b.target, retry=NO_RETRY, timeout=10) as w:
            t0 = time.monotonic()
            with pytest.raises(UnavailableError, match="nothing was recorded.*unreachable"):
                w.feedback("q9", "during the outage", [Judgment(ids[5], 1)])
            assert time.monotonic() - t0 < 3.0  # bounded by log_connect_timeout_s, not the request deadline
        nats_node.start().wait()  # same ports, same store
        with WinnowClient(b.target, retry=patient, timeout=30) as w:
            assert _rows(w.export_feedback()) == before  # every acknowledged record, nothing else
            assert w.feedback("q3", "insulin", [Judgment(ids[4], 2)]).recorded == 1  # writable again
        out = tmp_path / "feedback.jsonl"
        assert main(["feedback", "export", "--target", b.target, "--out", str(out)]) == 0
    finally:
        b.stop()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(x["query_id"], x["doc_id"]): x["relevance"] for x in lines} == {
        ("q1", ids[0]): 2, ("q1", ids[1]): 1, ("q1", ids[2]): 1,   # a click
        ("q2", ids[1]): 0, ("q2", ids[3]): 1,                      # the judgment "not relevant" beats its click
        ("q3", ids[4]): 2}                                         # the judgment beats the earlier click
    assert set(lines[0]) == {"query", "query_id", "doc_id", "relevance"}
    judged = {q.id: q for q in from_file(out, root, load_dataset_corpus(root))}
    assert judged["q1"].text == "vitamin d and fractures"
    assert judged["q1"].positives == {ids[0]: 2, ids[1]: 1, ids[2]: 1}
    assert judged["q2"].positives == {ids[3]: 1} and judged["q2"].negatives == {ids[1]}
    assert judged["q3"].positives == {ids[4]: 2}
    assert "wrote 6 training pairs" in capsys.readouterr().err
