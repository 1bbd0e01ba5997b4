"""Load that runs against a real gateway while a test breaks or changes the cluster under it: threads searching
the whole time (every answer counted, every failure, partial coverage and miss recorded) and a thread writing.

Used by the replica, replicated-write, layout-switch and reshard tests; each asserts on what the load recorded.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Self

import grpc

from winnow.client import WinnowClient
from winnow.services.gateway.consistency import decode_token, merge

TOPIC_QUERIES = [f"topic{i} words" for i in range(7)]


class _Load:
    """`workers` daemon threads running `_run(worker)` from `with` entry until its exit; then they are joined
    (for up to twice the client timeout, so a call in flight can finish) and the client closed."""

    def __init__(self, target: str, workers: int, timeout: float) -> None:
        self.client = WinnowClient(target, timeout=timeout)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failures: list[str] = []
        self._join_s = 2 * timeout
        self.threads = [threading.Thread(target=self._run, args=(w,), daemon=True) for w in range(workers)]

    def _run(self, worker: int) -> None:
        raise NotImplementedError

    def _failed(self, err: grpc.RpcError) -> None:
        with self.lock:
            self.failures.append(f"{err.code().name}: {err.details()}")

    def __enter__(self) -> Self:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=self._join_s)
        self.client.close()


class _Searches(_Load):
    """What every search load records: answers (`ok`), failures, answers with partial coverage (their failed
    shards), misses, and the layouts answers were served from."""

    def __init__(self, target: str, workers: int, timeout: float) -> None:
        super().__init__(target, workers, timeout)
        self.ok = 0
        self.partial: list[list[str]] = []
        self.misses: list[tuple] = []
        self.layouts: set[str] = set()

    def _search(self, query: str, expected: str | None = None, **kw) -> None:
        """One search without the cache or the reranker; `expected`: the id its top hit must be."""
        try:
            r = self.client.search(query, rerank=False, no_cache=True, **kw)
        except grpc.RpcError as err:
            self._failed(err)
            return
        with self.lock:
            self.ok += 1
            if r.served_at:
                self.layouts.add(r.served_at.split(".")[1])
            if r.coverage.shards_answered != r.coverage.shards_asked:
                self.partial.append(list(r.coverage.failed_shards))
            if expected is not None and (not r.hits or r.hits[0].id != expected):
                # which search, and where it was served: diagnosable
                self.misses.append((expected, [h.id for h in r.hits], f"search #{self.ok - 1}", r.served_at))

    def answers(self, more: int, within_s: float = 60.0) -> None:
        """Wait until `more` further searches have been answered."""
        goal, end = self.ok + more, time.monotonic() + within_s
        while self.ok < goal:
            assert time.monotonic() < end, f"only {self.ok} of {goal} answers; failures: {self.failures[-3:]}"
            time.sleep(0.01)


class SearchLoad(_Searches):
    """`workers` threads cycling through `TOPIC_QUERIES` (k=5, the default retrieval); coverage is the check."""

    def __init__(self, target: str, workers: int = 3, timeout: float = 5.0) -> None:
        super().__init__(target, workers, timeout)

    def _run(self, worker: int) -> None:
        n = worker
        while not self.stop.is_set():
            n += 1
            self._search(TOPIC_QUERIES[n % len(TOPIC_QUERIES)], k=5)


class FindLoad(_Searches):
    """`workers` threads looking up random documents `d<n>` (n < `docs`) by their unique word `uniq<n>`: the
    lexical top 1 must be that document, or it is a miss. Worker w draws from `random.Random(w)`."""

    def __init__(self, target: str, docs: int, workers: int = 3, timeout: float = 5.0) -> None:
        super().__init__(target, workers, timeout)
        self.docs = docs

    def _run(self, worker: int) -> None:
        rng = random.Random(worker)
        while not self.stop.is_set():
            n = rng.randrange(self.docs)
            self._search(f"uniq{n}", expected=f"d{n}", k=3, retrieval="lexical")


class WriteLoad(_Load):
    """One thread upserting batches of `size` new documents `w<i>` (text: `text(i)`), pausing `pause_s` after each
    call; records the acknowledged ids (`acked`), the failures, and the newest sequence per partition (`seqs`)."""

    def __init__(self, target: str, size: int = 10, pause_s: float = 0.0, timeout: float = 10.0,
                 text: Callable[[int], str] = lambda i: f"written {i} about topic{i % 7} words") -> None:
        super().__init__(target, 1, timeout)
        self.size, self.pause_s, self.text = size, pause_s, text
        self.acked: list[str] = []
        self.seqs: dict[int, int] = {}

    def _run(self, worker: int) -> None:
        n = 0
        while not self.stop.is_set():
            batch = [{"id": f"w{i}", "text": self.text(i)} for i in range(n, n + self.size)]
            n += self.size
            try:
                resp = self.client.upsert(batch)
            except grpc.RpcError as err:
                self._failed(err)
            else:
                with self.lock:
                    self.acked += [d["id"] for d in batch]
                    if resp.write_token:
                        self.seqs = merge(self.seqs, decode_token(resp.write_token)[1])
            if self.pause_s:
                time.sleep(self.pause_s)
