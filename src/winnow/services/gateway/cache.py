"""The result cache: Redis when reachable, an in-process LRU otherwise; always fail-open.

A cache problem never fails or slows a search beyond the lookup's short timeout: errors count in
winnow_cache_requests_total{result="error"} and the search runs uncached. After an error the Redis backend is
skipped for `retry_after_s` (a cheap circuit breaker) so a dead Redis costs nothing per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from winnow.common import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")


class CacheBackend(Protocol):
    name: str

    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl_s: int) -> None: ...
    async def close(self) -> None: ...


class MemoryBackend:
    """A bounded in-process LRU with TTL (the embedded default when no Redis is reachable)."""

    name = "memory"

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires < time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        self._data[key] = (time.monotonic() + ttl_s, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    async def close(self) -> None:
        self._data.clear()


class RedisBackend:
    name = "redis"

    def __init__(self, url: str, timeout_s: float = 0.05) -> None:
        import redis.asyncio as aioredis  # imported here: only this backend needs it

        self.url = url
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )

    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def get(self, key: str) -> bytes | None:
        return await self._client.get(key)

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        await self._client.set(key, value, ex=ttl_s)

    async def close(self) -> None:
        await self._client.aclose()


class ResultCache:
    """Fail-open cache over a backend, with background writes and single-flight misses."""

    def __init__(self, backend: CacheBackend | None, ttl_s: int = 300, retry_after_s: float = 1.0,
                 prefix: str = "winnow:v1:") -> None:
        self.backend = backend
        self.ttl_s = ttl_s
        self.retry_after_s = retry_after_s
        self.prefix = prefix
        self._down_until = 0.0
        self._writes: set[asyncio.Task] = set()
        self._flights: dict[str, asyncio.Future] = {}

    @property
    def kind(self) -> str:
        return self.backend.name if self.backend else "off"

    async def get(self, key: str) -> bytes | None:
        if self.backend is None:
            return None
        if time.monotonic() < self._down_until:
            metrics.CACHE_REQUESTS.labels("error").inc()
            return None
        try:
            value = await self.backend.get(self.prefix + key)
        except Exception as exc:  # noqa: BLE001 - fail-open: any backend error is a miss
            self._trip(exc)
            metrics.CACHE_REQUESTS.labels("error").inc()
            return None
        metrics.CACHE_REQUESTS.labels("hit" if value is not None else "miss").inc()
        return value

    def put(self, key: str, value: bytes) -> None:
        """Write in the background; the reply never waits for it. Tasks are held until done."""
        if self.backend is None or time.monotonic() < self._down_until:
            return
        task = asyncio.get_running_loop().create_task(self._write(key, value))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, key: str, value: bytes) -> None:
        try:
            await self.backend.set(self.prefix + key, value, self.ttl_s)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001
            self._trip(exc)

    def _trip(self, exc: BaseException) -> None:
        if time.monotonic() >= self._down_until:
            log.warning("cache backend failed; serving uncached", extra={"fields": {"error": repr(exc)}})
        self._down_until = time.monotonic() + self.retry_after_s

    async def single_flight(self, key: str, compute: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run `compute` once for concurrent callers with the same key. Returns (value, shared)."""
        fut = self._flights.get(key)
        if fut is not None:
            return await asyncio.shield(fut), True
        fut = asyncio.get_running_loop().create_future()
        self._flights[key] = fut
        try:
            value = await compute()
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        else:
            fut.set_result(value)
            return value, False
        finally:
            self._flights.pop(key, None)

    async def flush(self) -> None:
        """Wait for pending background writes (tests, shutdown)."""
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    async def close(self) -> None:
        await self.flush()
        if self.backend is not None:
            await self.backend.close()


def _redact(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def make_cache(mode: str, redis_url: str, ttl_s: int, timeout_s: float = 0.05) -> ResultCache:
    """mode: auto (Redis if it answers a PING, else memory), redis, memory or off."""
    if mode == "off":
        return ResultCache(None, ttl_s)
    if mode == "memory":
        return ResultCache(MemoryBackend(), ttl_s)
    backend = RedisBackend(redis_url, timeout_s=max(timeout_s, 0.05))
    try:
        await asyncio.wait_for(backend.ping(), timeout=1.0)
        log.info("result cache: redis", extra={"fields": {"url": _redact(redis_url)}})
        return ResultCache(backend, ttl_s)
    except Exception as exc:  # noqa: BLE001
        if mode == "redis":
            log.warning("redis unreachable at start; cache fails open until it answers",
                        extra={"fields": {"url": _redact(redis_url), "error": repr(exc)}})
            return ResultCache(backend, ttl_s)
        await backend.close()
        log.warning("redis unreachable; using the in-process cache",
                    extra={"fields": {"url": _redact(redis_url), "error": repr(exc)}})
        return ResultCache(MemoryBackend(), ttl_s)
