"""winnow.client against the real gateway servicer and gRPC edge (real sockets), over in-process fake backends.

The gateway's validation, error mapping (google.rpc.Status details), cursors and limits are the real ones; only
the embedder, shards and reranker are the fast fakes of tests/unit/test_gateway_search.py. The same checks run
through the blocking and the asyncio client.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2

from tests.unit.test_gateway_search import DOCS, FakeEmbedder, FakeLog, FakeReranker, FakeShard
from winnow.api.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from winnow.client import (
    NO_RETRY, AsyncWinnowClient, InvalidArgumentError, ResourceExhaustedError, RetryPolicy, UnauthenticatedError,
    UnavailableError, WinnowClient,
)
from winnow.client import requests as rq
from winnow.client.types import Limits
from winnow.common.deadline import Deadline
from winnow.common.errors import Overloaded, Unavailable
from winnow.rpc.server import GrpcService
from winnow.services.gateway.cache import MemoryBackend, ResultCache
from winnow.services.gateway.model import WriteDocument
from winnow.services.gateway.search import SearchCore
from winnow.services.gateway.server import API_VERSION, GatewayServicer
from winnow.services.gateway.settings import GatewaySettings
from winnow.services.gateway.writes import WriteCore

FAST_RETRY = RetryPolicy(max_attempts=5, initial_backoff_s=0.01, max_backoff_s=0.05)


class FlakyGateway(GatewayServicer):
    """The real servicer, with failures injected in front of it (raised as domain errors, mapped by the edge)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.fail_search: list[Exception] = []
        self.cut_bulk_after_pages = 0  # the next bulk stream fails with UNAVAILABLE after this many pages
        self.calls: dict[str, int] = {}
        self.upsert_sizes: list[int] = []

    def _count(self, name):
        self.calls[name] = self.calls.get(name, 0) + 1

    async def Search(self, request, context):
        self._count("Search")
        if self.fail_search:
            raise self.fail_search.pop(0)
        return await super().Search(request, context)

    async def BulkSearch(self, request, context):
        self._count("BulkSearch")
        cut, self.cut_bulk_after_pages = self.cut_bulk_after_pages, 0
        sent = 0
        async for page in super().BulkSearch(request, context):
            if cut and sent == cut:
                raise Unavailable("shard connection reset (injected)")
            sent += 1
            yield page

    async def Upsert(self, request, context):
        self._count("Upsert")
        self.upsert_sizes.append(len(request.documents))
        return await super().Upsert(request, context)


class Served:
    """A gateway on a background event loop, so blocking clients can call it from the test thread."""

    def __init__(self, settings: GatewaySettings, tls_dir: Path | None = None, client_auth: bool = False):
        self.settings = settings
        self.tls_dir = tls_dir
        self.client_auth = client_auth
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _start(self):
        emb, rr = FakeEmbedder(), FakeReranker()
        self.shards = [FakeShard("shard-0"), FakeShard("shard-1")]
        writes = WriteCore(emb, self.shards, log=FakeLog(self.shards))
        await writes.upsert([WriteDocument(i, t, f'{{"n": {n}, "tag": "t{n % 2}"}}') for n, (i, t) in
                             enumerate(DOCS)], Deadline(10))
        for n in range(40):  # a bulk-sized set: "baby" documents
            await writes.upsert([WriteDocument(f"b{n:02d}", f"baby photo number {n} baby")], Deadline(10))
        core = SearchCore(emb, self.shards, rr, ResultCache(MemoryBackend(), ttl_s=60))
        await core.refresh_models()
        self.servicer = FlakyGateway(core, writes, self.settings)

        def register(server):
            gateway_pb2_grpc.add_GatewayServicer_to_server(self.servicer, server)
            return ["winnow.gateway.v1.Gateway"]

        self.svc = GrpcService("gateway", self.settings, register)
        if self.tls_dir is None:
            self.port = await self.svc.start()
        else:
            self.port = await _start_tls(self.svc, self.tls_dir, self.client_auth)
        await self.svc.mark_ready()

    def __enter__(self) -> "Served":
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.svc.drain(0), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


async def _start_tls(svc: GrpcService, d: Path, client_auth: bool) -> int:
    """GrpcService.start, but on a TLS port (the server side of TLS is not the client's to own)."""
    creds = grpc.ssl_server_credentials([((d / "server.key").read_bytes(), (d / "server.crt").read_bytes())],
                                        root_certificates=(d / "ca.crt").read_bytes() if client_auth else None,
                                        require_client_auth=client_auth)
    real_server = grpc.aio.server

    def server_factory(*a, **kw):
        s = real_server(*a, **kw)
        s.add_insecure_port = lambda addr: s.add_secure_port(addr, creds)  # type: ignore[method-assign]
        return s

    grpc.aio.server = server_factory  # type: ignore[assignment]
    try:
        return await svc.start()
    finally:
        grpc.aio.server = real_server  # type: ignore[assignment]


@pytest.fixture(scope="module")
def gateway():
    with Served(GatewaySettings(host="127.0.0.1", port=0, max_write_docs=50, max_page_size=100)) as g:
        yield g


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("WINNOW_TARGET", "WINNOW_TOKEN", "WINNOW_TLS", "WINNOW_TLS_CA", "WINNOW_TLS_CERT", "WINNOW_TLS_KEY",
                "WINNOW_TLS_SERVER_NAME"):
        monkeypatch.delenv(var, raising=False)


def _run(coro):
    return asyncio.run(coro)


async def _async_search(target, **kw):
    async with AsyncWinnowClient(target, retry=FAST_RETRY) as w:
        return await w.search("aspirin fever", **kw)


def test_sync_and_async_give_the_same_typed_result(gateway):
    with WinnowClient(gateway.target, retry=FAST_RETRY) as w:
        a = w.search("aspirin fever", k=3, no_cache=True)
    b = _run(_async_search(gateway.target, k=3, no_cache=True))
    assert [h.id for h in a.hits] == [h.id for h in b.hits] and len(a.hits) == 3
    top = a.hits[0]
    assert a.reranked and top.rerank_score is not None and top.first_stage_rank >= 1
    assert isinstance(top.metadata["n"], int)  # Struct doubles come back as the ints they were
    assert {"embed", "search", "merge", "fusion", "rerank", "total"} <= set(a.timings_ms)
    assert a.timings.fusion is not None and a.coverage.complete
    assert a.raw.hits[0].id == top.id and "raw" not in repr(a)


def test_same_methods_on_both_clients():
    public = lambda cls: {n for n in dir(cls) if not n.startswith("_")}  # noqa: E731
    assert public(WinnowClient) == public(AsyncWinnowClient)


def test_info_reports_limits_and_versions(gateway):
    with WinnowClient(gateway.target) as w:
        info = w.info()
    assert info.limits.max_write_docs == 50 and info.limits.max_page_size == 100
    assert info.api_version == API_VERSION == "1.2" and info.version and info.documents == len(DOCS) + 40


def test_large_upsert_is_split_to_the_server_limit(gateway):
    docs = [{"id": f"u{i}", "text": f"upsert split test document {i}", "metadata": {"i": i}} for i in range(120)]
    gateway.servicer.upsert_sizes.clear()
    with WinnowClient(gateway.target) as w:
        res = w.upsert(docs)
        got = w.get(["u0", "u119", "nope"])
        assert w.delete([d["id"] for d in docs]).deleted == 120
    assert res.upserted == 120 and res.requests == 3 and gateway.servicer.upsert_sizes == [50, 50, 20]
    assert [d.id for d in got.documents] == ["u0", "u119"] and got.missing == ["nope"]


def test_small_upsert_over_a_low_limit_is_resplit_after_the_server_says_so(gateway):
    docs = [{"id": f"s{i}", "text": f"resplit {i}"} for i in range(60)]  # under 64: sent whole at first
    gateway.servicer.upsert_sizes.clear()

    async def go():
        async with AsyncWinnowClient(gateway.target) as w:
            return await w.upsert(docs)

    res = _run(go())
    assert gateway.servicer.upsert_sizes == [60, 50, 10]  # refused (TOO_MANY_ITEMS, nothing written), re-split
    assert res.requests == 2 and res.upserted == 60


def test_bad_input_is_checked_before_anything_is_sent(gateway):
    gateway.servicer.upsert_sizes.clear()
    with WinnowClient(gateway.target) as w:
        with pytest.raises(InvalidArgumentError) as err:
            w.upsert([{"id": f"x{i}", "text": "ok"} for i in range(70)] + [{"id": "x3", "text": "dup"}])
    assert gateway.servicer.upsert_sizes == [] and "twice" in str(err.value)
    assert err.value.field_violations[0][0] == "documents[70].id"


def test_overload_is_retried_honouring_retry_info(gateway):
    gateway.servicer.fail_search[:] = [Overloaded("busy", retry_after_s=0.3), Unavailable("restarting")]
    before = gateway.servicer.calls.get("Search", 0)
    with WinnowClient(gateway.target, retry=FAST_RETRY) as w:
        t = time.perf_counter()
        r = w.search("statins cholesterol", no_cache=True)
        elapsed = time.perf_counter() - t
    assert r.hits[0].id == "d3"
    assert gateway.servicer.calls["Search"] - before == 3
    assert elapsed >= 0.3  # waited what RetryInfo asked, although the policy's own backoff is 10-50 ms


def test_error_details_reach_the_caller_and_are_not_retried(gateway):
    gateway.servicer.fail_search[:] = [Overloaded("busy", retry_after_s=0.25)]
    with WinnowClient(gateway.target, retry=NO_RETRY) as w:
        with pytest.raises(ResourceExhaustedError) as busy:
            w.search("x")
        before = gateway.servicer.calls["Search"]
        with pytest.raises(InvalidArgumentError) as bad:
            w.search("x", k=5000)
    assert busy.value.retry_delay == pytest.approx(0.25) and busy.value.reason == "OVERLOADED"
    assert gateway.servicer.calls["Search"] == before + 1  # INVALID_ARGUMENT: one attempt only
    assert bad.value.reason == "K_TOO_LARGE" and bad.value.field_violations[0][0] == "k"
    assert bad.value.info["limit"] == "1000" and bad.value.request_id
    assert bad.value.to_json()["code"] == "INVALID_ARGUMENT"


def test_retries_stop_at_the_call_timeout(gateway):
    gateway.servicer.fail_search[:] = [Overloaded("busy", retry_after_s=0.4) for _ in range(10)]
    with WinnowClient(gateway.target, retry=RetryPolicy(max_attempts=10)) as w:
        t = time.perf_counter()
        with pytest.raises(ResourceExhaustedError):
            w.search("x", timeout=1.0)
        assert time.perf_counter() - t < 1.3
    gateway.servicer.fail_search.clear()


BABIES = {f"b{n:02d}" for n in range(40)}


def _ids(pages):
    return [h.id for p in pages for h in p.hits]


def test_bulk_pages_resume_from_a_cursor(gateway):
    with WinnowClient(gateway.target) as w:
        full = list(w.bulk_search("baby photo", threshold=0.3, page_size=7))
        first_two = []
        for page in w.bulk_search("baby photo", threshold=0.3, page_size=7):
            first_two.append(page)
            if len(first_two) == 2:
                break
        rest = list(w.bulk_search("baby photo", threshold=0.3, page_size=7, cursor=first_two[-1].cursor))
    ids = _ids(full)
    assert BABIES <= set(ids) and len(set(ids)) == len(ids) and full[-1].last and len(full) >= 6
    assert _ids(first_two) + _ids(rest) == ids
    assert [p.page for p in first_two + rest] == list(range(len(full)))
    assert rest[-1].total == len(ids)


def test_a_cut_bulk_stream_resumes_by_itself(gateway):
    with WinnowClient(gateway.target, retry=FAST_RETRY) as w:
        full = _ids(w.bulk_search("baby photo", threshold=0.3, page_size=5))
        before = gateway.servicer.calls["BulkSearch"]
        gateway.servicer.cut_bulk_after_pages = 3
        resumed = _ids(w.bulk_search("baby photo", threshold=0.3, page_size=5))
    assert gateway.servicer.calls["BulkSearch"] == before + 2
    assert resumed == full


def test_async_bulk_and_cursor_errors(gateway):
    async def go():
        async with AsyncWinnowClient(gateway.target) as w:
            pages = [p async for p in w.bulk_search("baby photo", threshold=0.3, page_size=10, max_results=25)]
            with pytest.raises(InvalidArgumentError) as other:
                [p async for p in w.bulk_search("statins", threshold=0.3, cursor=pages[0].cursor)]
            with pytest.raises(InvalidArgumentError) as junk:
                [p async for p in w.bulk_search("baby photo", threshold=0.3, cursor="not-a-cursor")]
            return pages, other.value, junk.value

    pages, other, junk = _run(go())
    assert len(_ids(pages)) == 25 and pages[-1].last
    assert other.reason == junk.reason == "BAD_CURSOR" and other.field_violations[0][0] == "cursor"


def test_unreachable_target_is_unavailable_quickly():
    with WinnowClient("127.0.0.1:1", retry=FAST_RETRY, timeout=2) as w:
        with pytest.raises(UnavailableError) as err:
            w.info()
    assert "unreachable" in str(err.value)


def test_token_from_argument_or_environment(monkeypatch):
    settings = GatewaySettings(host="127.0.0.1", port=0, auth_token="t0ken")
    with Served(settings) as g:
        with WinnowClient(g.target) as w:
            with pytest.raises(UnauthenticatedError) as err:
                w.info()
            assert err.value.reason == "BAD_TOKEN"
        with WinnowClient(g.target, token="t0ken") as w:
            assert w.info().documents > 0
        monkeypatch.setenv("WINNOW_TOKEN", "t0ken")
        monkeypatch.setenv("WINNOW_TARGET", g.target)
        with WinnowClient() as w:
            assert w.target == g.target and w.info().documents > 0


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=winnow-test-ca", cwd=d)
    for name, cn in (("server", "127.0.0.1"), ("client", "winnow-client")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={cn}", cwd=d)
        (d / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    return d


def test_tls_with_ca_and_mutual_tls_from_environment(certs, monkeypatch):
    with Served(GatewaySettings(host="127.0.0.1", port=0), tls_dir=certs) as g:
        with WinnowClient(g.target, tls_ca=str(certs / "ca.crt")) as w:
            assert w.info().documents > 0
        with WinnowClient(g.target, retry=NO_RETRY, timeout=3) as w:  # plaintext to a TLS port
            with pytest.raises(UnavailableError):
                w.info()
    with Served(GatewaySettings(host="127.0.0.1", port=0), tls_dir=certs, client_auth=True) as g:
        monkeypatch.setenv("WINNOW_TLS_CA", str(certs / "ca.crt"))
        monkeypatch.setenv("WINNOW_TLS_CERT", str(certs / "client.crt"))
        monkeypatch.setenv("WINNOW_TLS_KEY", str(certs / "client.key"))

        async def go():
            async with AsyncWinnowClient(g.target) as w:
                return (await w.search("fever", k=2)).hits

        assert len(_run(go())) == 2
        with WinnowClient(g.target, tls_cert="", tls_key="", retry=NO_RETRY, timeout=3) as w:
            with pytest.raises(UnavailableError):  # the server requires a client certificate
                w.info()


def test_unreadable_tls_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read the CA file"):
        WinnowClient("127.0.0.1:1", tls_ca=str(tmp_path / "missing.pem"))


def test_split_documents_respects_bytes_and_count():
    docs = rq.documents({"id": str(i), "text": "x" * 1000} for i in range(30))
    chunks = rq.split_documents(docs, Limits(max_write_docs=100, max_message_bytes=5000))
    assert [len(c) for c in chunks] == [4] * 7 + [2]
    assert all(sum(d.ByteSize() for d in c) < 5000 for c in chunks)
    assert [len(c) for c in rq.split_documents(docs, Limits(max_write_docs=8))] == [8, 8, 8, 6]


def test_reflection_v1_and_v1alpha(gateway):
    names = {}
    with grpc.insecure_channel(gateway.target) as ch:
        for version in ("v1", "v1alpha"):
            call = ch.stream_stream(f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
                                    request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                    response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
            [resp] = list(call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
            names[version] = {s.name for s in resp.list_services_response.service}
    assert names["v1"] == names["v1alpha"]
    assert {"winnow.gateway.v1.Gateway", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"} <= names["v1"]


def test_old_callers_sending_a_search_request_to_bulk_search_still_work(gateway):
    """BulkSearchRequest kept SearchRequest's field numbers: yesterday's bytes still parse."""
    with grpc.insecure_channel(gateway.target) as ch:
        call = ch.unary_stream("/winnow.gateway.v1.Gateway/BulkSearch",
                               request_serializer=lambda b: b,
                               response_deserializer=gateway_pb2.BulkSearchPage.FromString)
        # field 1 = query, field 2 = mode (MODE_BULK = 2), field 10 = threshold (float 0.3)
        import struct
        raw = b"\x0a\x0ababy photo" + b"\x10\x02" + b"\x55" + struct.pack("<f", 0.3)
        pages = list(call(raw, timeout=5))
    assert BABIES <= {h.id for p in pages for h in p.hits}
