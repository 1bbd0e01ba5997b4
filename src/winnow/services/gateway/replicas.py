"""One shard's replicas behind one ShardPort: pick a healthy replica, fail over, hedge; no gRPC in here.

Picking: replicas whose health stream says SERVING and that are not ejected come first, then those whose health
is unknown (stream reconnecting), then the rest (when nothing else is left, trying beats failing). Within a tier:
a replica known to have applied the sequence the query needs, then the fewest requests outstanding from this
gateway, then the lower latency average, then chance.

Failing over: a replica that errors is ejected for a while (doubling per consecutive failure, reset by a success
or a SERVING health report) and the query goes to the next replica at once. A replica that is slow gets company:
with hedging on, a second replica is asked after `hedge_after_s`; with it off, once `backup_fraction` of the
budget has gone. Whichever answers first wins, the other call is cancelled. Coverage is lost only when every
replica of the shard failed within the caller's deadline.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from winnow.common import metrics
from winnow.common.deadline import Deadline
from winnow.common.errors import (
    DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound, Unavailable, WinnowError, short,
)
from winnow.services.gateway.ports import Hit, ShardPort, ShardQuery, ShardRangeQuery, ShardResult, ShardStats

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Errors that say nothing about the replica's health (the request itself, or a replica that is merely behind).
_NOT_THE_REPLICAS_FAULT = (InvalidArgument, NotFound, FailedPrecondition)


class ReplicaPort(ShardPort, Protocol):
    """A ShardPort for one replica, plus its health stream and the address it was dialled at."""

    target: str

    def serving(self) -> AsyncIterator[bool]:
        """The replica's health (True = SERVING) now and on every change, until the stream breaks."""

    async def check(self, timeout: float) -> bool:
        """One health check with a deadline: True = SERVING (a hung replica does not answer in time)."""

    async def close(self) -> None: ...


@dataclass
class ReplicaPolicy:
    hedge_after_s: float = 0.0       # > 0: ask a second replica when the first has not answered after this long
    backup_fraction: float = 0.5     # hedging off: ask a second replica once this share of the budget is gone
    eject_base_s: float = 0.25       # first ejection after a failure; doubles per consecutive failure
    eject_max_s: float = 5.0
    ewma_alpha: float = 0.2
    retry_s: float = 0.2             # pause before re-opening a broken health or sequence stream
    probe_timeout_s: float = 0.5     # an ejected replica is taken back only once a health check answers in this
    consistency_fraction: float = 0.7  # share of the budget a read-your-writes query may spend waiting


class Replica:
    """The gateway's view of one replica: load, health, ejection and applied sequence."""

    def __init__(self, port: ReplicaPort, policy: ReplicaPolicy) -> None:
        self.port = port
        self.target = port.target
        self.policy = policy
        self.outstanding = 0
        self.ewma_ms = 0.0
        self.failures = 0
        self.slow_streak = 0  # answers lost to a faster replica in a row
        self.ejected_until = 0.0
        self.serving: bool | None = None  # None: health not known (never seen, or its stream is reconnecting)
        self.seq: int | None = None       # applied sequence from the Watch stream; None while it is down
        self.removed = False
        self.tasks: list[asyncio.Task] = []
        self._probe: asyncio.Task | None = None

    def tier(self) -> int:
        # Ejected until a success or its re-admission check clears it, not merely until the pause has passed:
        # between the end of the pause and the check (a task that may wake late on a busy CPU), searches would
        # otherwise reach a replica whose check is about to fail.
        if self.ejected_until or self.serving is False:
            return 2
        return 0 if self.serving else 1

    def succeeded(self, ms: float) -> None:
        a = self.policy.ewma_alpha
        self.ewma_ms = ms if self.ewma_ms == 0 else (1 - a) * self.ewma_ms + a * ms
        self.failures = 0
        self.slow_streak = 0
        self.ejected_until = 0.0

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, _NOT_THE_REPLICAS_FAULT):
            return
        self._eject()

    def outran(self, ms: float, eject: bool) -> None:
        """Another replica answered first while this one was still busy after `ms`: it is at least that slow."""
        a = self.policy.ewma_alpha
        self.ewma_ms = (1 - a) * self.ewma_ms + a * ms
        self.slow_streak += 1
        if eject or self.slow_streak >= 3:  # a hung replica (open connection, no answers) is as bad as a dead one
            self._eject()

    def _eject(self) -> None:
        self.failures += 1
        self.ejected_until = time.monotonic() + self._pause()
        if self._probe is None and not self.removed:
            self._probe = asyncio.get_running_loop().create_task(self._readmit(), name=f"probe-{self.target}")

    async def _readmit(self) -> None:
        """When the ejection ends, a health check (not a caller's search) decides whether the replica is back."""
        try:
            while not self.removed and self.ejected_until:
                wait = self.ejected_until - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue  # the ejection may have been extended or lifted meanwhile
                self.ejected_until = float("inf")  # no searches while the check runs
                try:
                    ok = await self.port.check(self.policy.probe_timeout_s)
                except Exception:  # noqa: BLE001 - no answer is a failed check
                    ok = False
                if ok:
                    self.ejected_until = 0.0
                else:
                    self.failures += 1
                    self.ejected_until = time.monotonic() + self._pause()
        finally:
            self._probe = None

    def _pause(self) -> float:
        return min(self.policy.eject_max_s, self.policy.eject_base_s * 2 ** (self.failures - 1))

    def call_done(self, _task: asyncio.Task | None = None) -> None:
        self.outstanding -= 1

    def start(self) -> None:
        if not self.tasks:
            self.tasks = [asyncio.create_task(self._follow_health(), name=f"health-{self.target}"),
                          asyncio.create_task(self._follow_seq(), name=f"seq-{self.target}")]

    async def stop(self) -> None:
        self.removed = True
        if self._probe is not None:
            self.tasks.append(self._probe)
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []

    async def _follow_health(self) -> None:
        while not self.removed:
            try:
                async for ok in self.port.serving():
                    self.serving = ok
                    if ok:  # back: forget past failures
                        self.failures, self.ejected_until = 0, 0.0
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - stream lost: health unknown until it is back
                pass
            self.serving = None if self.serving else self.serving
            if self.removed:
                return
            # Ask at once rather than wait for a search to find out: a replica that does not answer is out.
            try:
                ok = await self.port.check(self.policy.probe_timeout_s)
            except Exception:  # noqa: BLE001 - no answer is a failed check
                ok = False
            if not ok:
                self.serving = False
            await asyncio.sleep(self.policy.retry_s)

    async def _follow_seq(self) -> None:
        while not self.removed:
            try:
                async for seq in self.port.watch():
                    self.seq = seq if self.seq is None else max(self.seq, seq)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - stream lost: the sequence is unknown until it is back
                pass
            self.seq = None
            await asyncio.sleep(self.policy.retry_s)


class ReplicaSet:
    """All replicas of one shard, used as one ShardPort by the search and write cores."""

    def __init__(self, name: str, ports: list[ReplicaPort], policy: ReplicaPolicy | None = None) -> None:
        self.name = name
        self.policy = policy or ReplicaPolicy()
        self.replicas: list[Replica] = [Replica(p, self.policy) for p in ports]
        self._rng = random.Random()
        self._started = False

    @property
    def target(self) -> str:
        return "|".join(r.target for r in self.replicas)

    # -- membership -------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._started = True
        for r in self.replicas:
            r.start()

    async def stop(self) -> None:
        await asyncio.gather(*(self._retire(r, grace_s=0) for r in self.replicas))

    async def update(self, targets: list[str], dial: Callable[[str], ReplicaPort], grace_s: float = 30.0) -> None:
        """Make the replicas exactly `targets`: dial new ones, retire the others once their calls are done."""
        have = {r.target: r for r in self.replicas}
        keep = [have[t] if t in have else Replica(dial(t), self.policy) for t in dict.fromkeys(targets)]
        gone = [r for r in self.replicas if r.target not in set(targets)]
        self.replicas = keep
        if self._started:
            for r in keep:
                r.start()
        for r in gone:
            r.removed = True
        if gone:
            log.info("replicas changed", extra={"fields": {"shard": self.name, "replicas": list(targets),
                                                           "removed": [r.target for r in gone]}})
            await asyncio.gather(*(self._retire(r, grace_s) for r in gone))

    @staticmethod
    async def _retire(r: Replica, grace_s: float) -> None:
        r.removed = True
        end = time.monotonic() + grace_s
        while r.outstanding and time.monotonic() < end:
            await asyncio.sleep(0.05)  # in-flight calls finish on the old replica
        await r.stop()
        await r.port.close()

    # -- what the cores see -----------------------------------------------------------------------------------

    def known_seq(self) -> int | None:
        """The newest sequence a live replica reported (the freshest data this shard can serve), or None."""
        seqs = [r.seq for r in self.replicas if r.seq is not None and not r.removed]
        return max(seqs) if seqs else None

    def pick(self, exclude: set[Replica] = frozenset(), min_seq: int = 0) -> Replica | None:
        best, best_key = None, None
        for r in self.replicas:
            if r in exclude or r.removed:
                continue
            behind = min_seq > 0 and (r.seq is None or r.seq < min_seq)
            key = (r.tier(), behind, r.outstanding, round(r.ewma_ms, 1), self._rng.random())
            if best_key is None or key < best_key:
                best, best_key = r, key
        return best

    async def search(self, query: ShardQuery, timeout: float | None) -> ShardResult:
        if not query.min_applied_seq:
            return await self._call("search", lambda p, t: p.search(query, t), timeout)
        deadline = Deadline(timeout)

        async def applied(p: ReplicaPort, t: float | None) -> ShardResult:
            res = await p.search(query, t)
            seq = res.applied_seq or res.generation
            if seq < query.min_applied_seq:  # a replica that does not know the field answers anyway: check
                raise FailedPrecondition(f"replica at seq {seq}, needs {query.min_applied_seq}")
            return res

        try:
            return await self._call("search", applied, deadline.timeout(fraction=self.policy.consistency_fraction),
                                    query.min_applied_seq)
        except FailedPrecondition as exc:  # replicas are up but none applied the write in time
            relaxed = replace(query, min_applied_seq=0)
            res = await self._call("search", lambda p, t: p.search(relaxed, t), deadline.timeout())
            res.consistency_unmet = str(exc)
            return res

    async def range_search(self, query: ShardRangeQuery, timeout: float | None) -> AsyncIterator[list[Hit]]:
        """Best-first pages; a replica failing mid-stream is replaced by another, skipping what was sent."""
        deadline = Deadline(timeout)
        tried: set[Replica] = set()
        seen: set[str] = set()
        floor: float | None = None
        errors: list[str] = []
        while True:
            r = self.pick(tried)
            if r is None or deadline.expired():
                raise _no_replica(self.name, errors, deadline)
            tried.add(r)
            r.outstanding += 1
            t0 = time.perf_counter()
            try:
                async for page in r.port.range_search(query, deadline.timeout()):
                    out = [h for h in page if h.id not in seen and (floor is None or h.score <= floor)]
                    seen.update(h.id for h in out)
                    if out:
                        floor = out[-1].score
                        yield out
                r.succeeded((time.perf_counter() - t0) * 1000)
                return
            except InvalidArgument:
                raise
            except Exception as exc:  # noqa: BLE001 - try the next replica
                r.failed(exc)
                errors.append(f"{r.target}: {short(exc)}")
                if len(tried) < len(self.replicas):
                    metrics.REPLICA_FAILOVERS.labels(self.name, "range_search").inc()
            finally:
                r.outstanding -= 1

    async def get(self, ids: list[str], timeout: float | None) -> tuple[list[Hit], list[str]]:
        return await self._call("get", lambda p, t: p.get(ids, t), timeout)

    async def stats(self, timeout: float | None) -> ShardStats:
        st = await self._call("stats", lambda p, t: p.stats(t), timeout)
        return replace(st, name=self.name)

    async def replica_stats(self, timeout: float | None) -> list[tuple[str, ShardStats | BaseException]]:
        """Every replica's own Stats (or the error it gave), for ClusterInfo."""
        rs = list(self.replicas)
        out = await asyncio.gather(*(r.port.stats(timeout) for r in rs), return_exceptions=True)
        return [(r.target, s) for r, s in zip(rs, out)]

    async def watch(self) -> AsyncIterator[int]:
        raise NotImplementedError("a replica set reports known_seq(); watch its replicas instead")
        yield 0  # pragma: no cover

    async def close(self) -> None:
        await self.stop()

    # -- the failover engine ----------------------------------------------------------------------------------

    async def _everywhere(self, fn: Callable[[ReplicaPort], Awaitable[T]]) -> list[T]:
        rs = [r for r in self.replicas if not r.removed]
        if not rs:
            raise Unavailable(f"{self.name}: no replica known")
        out = await asyncio.gather(*(fn(r.port) for r in rs), return_exceptions=True)
        bad = [(r, e) for r, e in zip(rs, out) if isinstance(e, BaseException)]
        if bad:
            raise Unavailable(f"{self.name}: " + "; ".join(f"{r.target}: {short(e)}" for r, e in bad))
        return out  # type: ignore[return-value]

    async def _call(self, what: str, fn: Callable[[ReplicaPort, float | None], Awaitable[T]],
                    timeout: float | None, min_seq: int = 0) -> T:
        deadline = Deadline(timeout)
        tried: set[Replica] = set()
        pending: dict[asyncio.Task, Replica] = {}
        started: dict[asyncio.Task, float] = {}
        errors: list[str] = []
        behind = False

        def launch() -> bool:
            r = self.pick(tried, min_seq)
            if r is None or deadline.expired():
                return False
            tried.add(r)
            r.outstanding += 1  # counted from the pick, so concurrent picks see it; lowered when the task ends
            task = asyncio.create_task(self._attempt(r, fn, deadline.timeout()))
            task.add_done_callback(r.call_done)
            pending[task] = r
            started[task] = time.monotonic()
            return True

        if not launch():
            raise Unavailable(f"{self.name}: no replica known")
        try:
            while pending:
                wait = self._backup_after(deadline) if len(pending) == 1 and len(tried) < len(self.replicas) else None
                done, _ = await asyncio.wait(pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                if not done:  # slow: ask another replica too; the first one may still win
                    if launch():
                        metrics.REPLICA_FAILOVERS.labels(
                            self.name, "hedge" if self.policy.hedge_after_s > 0 else "slow").inc()
                    continue
                for task in done:
                    r = pending.pop(task)
                    exc = task.exception()
                    if exc is None:
                        now = time.monotonic()
                        for loser, lr in pending.items():  # still running: slower than the winner
                            lr.outran((now - started[loser]) * 1000, eject=self.policy.hedge_after_s <= 0)
                        return task.result()
                    if isinstance(exc, InvalidArgument):
                        raise exc
                    behind = behind or isinstance(exc, FailedPrecondition)
                    errors.append(f"{r.target}: {short(exc)}")
                if not pending and launch():
                    metrics.REPLICA_FAILOVERS.labels(self.name, "error").inc()
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if behind:
            raise FailedPrecondition(f"{self.name}: no replica applied sequence {min_seq} in time: "
                                     f"{'; '.join(errors)}")
        raise _no_replica(self.name, errors, deadline)

    def _backup_after(self, deadline: Deadline) -> float | None:
        if self.policy.hedge_after_s > 0:
            return self.policy.hedge_after_s
        left = deadline.remaining()
        return None if left is None else max(0.0, left * self.policy.backup_fraction)

    @staticmethod
    async def _attempt(r: Replica, fn: Callable[[ReplicaPort, float | None], Awaitable[T]],
                       timeout: float | None) -> T:
        """One call to one replica (its outstanding count is the caller's business)."""
        t0 = time.perf_counter()
        try:
            res = await fn(r.port, timeout)
        except asyncio.CancelledError:
            raise  # lost a hedge race: not the replica's fault
        except Exception as exc:
            r.failed(exc)
            raise
        r.succeeded((time.perf_counter() - t0) * 1000)
        if isinstance(res, ShardResult):
            res.replica = r.target
        return res


def _no_replica(name: str, errors: list[str], deadline: Deadline) -> WinnowError:
    detail = "; ".join(errors) or "none could be asked"
    if deadline.expired():
        return DeadlineExceeded(f"{name}: no replica answered within the deadline: {detail}")
    return Unavailable(f"{name}: no replica answered: {detail}")


def describe(rs: ReplicaSet) -> list[dict[str, Any]]:
    """The picker's view of every replica (logs, debugging, ClusterInfo)."""
    now = time.monotonic()
    return [{"target": r.target, "serving": r.serving, "seq": r.seq, "outstanding": r.outstanding,
             "ewma_ms": round(r.ewma_ms, 2), "ejected_s": max(0.0, round(r.ejected_until - now, 2))}
            for r in rs.replicas]
