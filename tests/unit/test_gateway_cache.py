import asyncio
import shutil
import socket
import subprocess

import pytest

from winnow.common import metrics
from winnow.services.gateway.cache import MemoryBackend, RedisBackend, ResultCache, make_cache


def _value(result):
    return metrics.CACHE_REQUESTS.labels(result)._value.get()


async def test_memory_cache_roundtrip_and_lru_bound():
    cache = ResultCache(MemoryBackend(max_entries=2), ttl_s=60)
    assert await cache.get("a") is None
    cache.put("a", b"1")
    cache.put("b", b"2")
    cache.put("c", b"3")
    await cache.flush()
    assert await cache.get("a") is None  # evicted
    assert await cache.get("c") == b"3"


async def test_single_flight_computes_once():
    cache = ResultCache(MemoryBackend(), ttl_s=60)
    calls = 0

    async def compute():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return "v"

    results = await asyncio.gather(*(cache.single_flight("k", compute) for _ in range(5)))
    assert calls == 1
    assert [v for v, _ in results] == ["v"] * 5
    assert sum(shared for _, shared in results) == 4


async def test_single_flight_error_reaches_every_waiter():
    cache = ResultCache(MemoryBackend(), ttl_s=60)

    async def boom():
        await asyncio.sleep(0.01)
        raise RuntimeError("x")

    results = await asyncio.gather(*(cache.single_flight("k", boom) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_redis_down_fails_open_and_counts_errors():
    port = _free_port()  # nothing listens here
    cache = ResultCache(RedisBackend(f"redis://127.0.0.1:{port}/0"), ttl_s=60, retry_after_s=30)
    before = _value("error")
    assert await cache.get("k") is None
    assert await cache.get("k") is None  # circuit open: no second connection attempt
    assert _value("error") == before + 2
    cache.put("k", b"v")  # skipped while down; must not raise
    await cache.close()


async def test_make_cache_auto_falls_back_to_memory_without_redis():
    cache = await make_cache("auto", f"redis://127.0.0.1:{_free_port()}/0", 60)
    assert cache.kind == "memory"


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
async def test_real_redis_roundtrip_and_ttl(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        cache = None
        for _ in range(100):
            cache = await make_cache("auto", f"redis://127.0.0.1:{port}/0", 1)
            if cache.kind == "redis":
                break
            await asyncio.sleep(0.05)
        assert cache.kind == "redis"
        cache.put("k", b"v")
        await cache.flush()
        assert await cache.get("k") == b"v"
        await asyncio.sleep(1.2)
        assert await cache.get("k") is None  # TTL expired
        await cache.close()
    finally:
        proc.terminate()
        proc.wait()


def test_logged_redis_urls_carry_no_password():
    from winnow.services.gateway.cache import _redact

    assert _redact("redis://:s3cret@cache:6380/0") == "redis://:***@cache:6380/0"
    assert _redact("redis://user:s3cret@cache/1") == "redis://user:***@cache/1"
    assert _redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
