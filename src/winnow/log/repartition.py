"""Re-partition the document log from one layout into another: every message of the old layout's partitions,
routed by the same jump hash over the new shard count, appended to the new layout's streams. Stored vectors
travel as they are: nothing is embedded again.

The copier keeps tailing the old partitions until it is stopped, so writes that land on the old layout while the
new one catches up (and until every gateway has switched) are carried over too. It never overwrites a newer
direct write: each copy is published with `Nats-Expected-Last-Subject-Sequence` = the sequence of its own previous
copy of that document (0 = none), so once a gateway writes a document into the new layout itself, a late copy of an
older version is refused by JetStream and skipped.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import nats.errors
import nats.js.errors
from nats.js.api import Header

from winnow.common.errors import Unavailable
from winnow.log import codec, names
from winnow.log.client import DocumentLog

log = logging.getLogger(__name__)

EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
#: What a log restart or a lost connection raises: the copy resumes instead of failing the reshard.
_TRANSIENT = (Unavailable, nats.errors.Error, asyncio.TimeoutError, ConnectionError, OSError)


def route(doc_id: str, partitions: int) -> int:
    from winnow.services.gateway.routing import shard_for  # the one routing function (pure, no grpc)

    return shard_for(doc_id, partitions)


@dataclass
class CopyProgress:
    copied: int = 0
    retries: int = 0        # copies resumed after a transient failure (the log restarting, a lost connection)
    skipped_newer: int = 0  # copies refused because the new layout already had a newer direct write
    applied_seq: dict[int, int] = field(default_factory=dict)  # old partition -> last sequence copied
    lag: dict[int, int] = field(default_factory=dict)          # old partition -> messages not yet copied

    @property
    def caught_up(self) -> bool:
        return bool(self.lag) and all(v == 0 for v in self.lag.values())


class Repartitioner:
    """Copies `old_layout` (old_n partitions) into `new_layout` (new_n partitions) until `stop()`."""

    def __init__(self, doc_log: DocumentLog, old_layout: str, old_n: int, new_layout: str, new_n: int,
                 tombstone_ttl_s: float, batch: int = 512, max_failures: int = 8, ack_timeout_s: float = 5.0) -> None:
        self.log = doc_log
        self.max_failures = max_failures
        self.ack_timeout_s = ack_timeout_s  # an ack lost in a log restart: the copy resumes after this long
        self.old_layout, self.old_n = old_layout, old_n
        self.new_layout, self.new_n = new_layout, new_n
        self.tombstone_ttl_s = tombstone_ttl_s
        self.batch = batch
        self.progress = CopyProgress(lag={p: -1 for p in range(old_n)})
        self._last: dict[str, int] = {}  # new subject -> sequence of our own last copy there
        self._tasks: list[asyncio.Task] = []
        self._failures: dict[int, int] = {}  # old partition -> transient failures in a row

    async def start(self) -> None:
        for q in range(self.new_n):
            await self.log.ensure_stream(self.new_layout, q)
        self._tasks = [asyncio.get_running_loop().create_task(self._copy(p)) for p in range(self.old_n)]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait_caught_up(self, timeout: float) -> None:
        end = asyncio.get_running_loop().time() + timeout
        while not self.progress.caught_up:
            for t in self._tasks:
                if t.done() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            if asyncio.get_running_loop().time() > end:
                raise TimeoutError(f"re-partitioning did not catch up in {timeout}s: lag {self.progress.lag}")
            await asyncio.sleep(0.05)

    async def _copy(self, p: int) -> None:
        """Copy old partition `p` until stopped. A transient failure resumes after the last batch copied in
        full, after a backoff (0.2 s doubling to 5 s); `max_failures` in a row without a batch copied end it, and
        `wait_caught_up` raises that error. Resuming re-publishes the rest of a half-published batch: copies whose
        ack was lost are refused by the expected-sequence header and counted in `skipped_newer`, never doubled."""
        self._failures[p] = 0
        while True:
            try:
                await self._copy_from(p, self.progress.applied_seq.get(p, 0))
            except _TRANSIENT as exc:
                self._failures[p] += 1
                if self._failures[p] > self.max_failures:
                    raise
                self.progress.retries += 1
                pause = min(5.0, 0.2 * 2 ** (self._failures[p] - 1))
                log.warning("re-partition copy failed; resuming", extra={"fields": {
                    "partition": p, "after_seq": self.progress.applied_seq.get(p, 0), "error": repr(exc)[:200],
                    "retry_in_s": pause}})
                await asyncio.sleep(pause)

    async def _copy_from(self, p: int, after_seq: int) -> None:
        reader = self.log.reader(self.old_layout, p)
        try:
            await reader.open(after_seq)
            while True:
                records = await reader.batch(self.batch, wait_s=0.3)
                if records:
                    await self._publish(records)
                    self.progress.applied_seq[p] = records[-1].seq
                    self._failures[p] = 0
                if not records or reader.lag == 0:
                    info = await reader._sub.consumer_info()  # noqa: SLF001 - the reader's own subscription
                    delivered = int(info.delivered.stream_seq or 0) if info.delivered else 0
                    pending = int(info.num_pending or 0) + reader._sub.pending_msgs  # noqa: SLF001
                    done = self.progress.applied_seq.get(p, 0)
                    self.progress.lag[p] = pending + max(0, delivered - done)
        finally:
            await reader.close()

    async def _publish(self, records: list[codec.LogRecord]) -> None:
        latest = {r.id: r for r in records}  # two versions of one document in a batch: the later one is enough
        sends, subjects = [], []
        for r in (r for r in records if latest[r.id] is r):
            if r.op not in (codec.OP_UPSERT, codec.OP_DELETE):
                continue  # unreadable: already logged by the reader
            q = route(r.id, self.new_n)
            subject = names.subject(self.new_layout, q, r.id)
            body = (codec.encode_upsert(r.id, r.vector, r.text, r.metadata_json) if r.op == codec.OP_UPSERT
                    else codec.encode_delete(r.id))
            headers = {EXPECTED_LAST_SUBJECT_SEQ: str(self._last.get(subject, 0)),
                       Header.EXPECTED_STREAM: names.stream(self.new_layout, q)}
            if r.op == codec.OP_DELETE:
                headers[Header.MSG_TTL] = str(int(self.tombstone_ttl_s))
            sends.append((subject, body, headers))
            subjects.append(subject)
        answers = await self.log.acknowledged(sends, self.ack_timeout_s) if sends else []
        failed: BaseException | None = None
        for subject, ans in zip(subjects, answers):  # every ack is recorded before a failure is raised
            if isinstance(ans, nats.js.errors.APIError) and getattr(ans, "err_code", None) == 10071:
                self.progress.skipped_newer += 1  # wrong last sequence: a newer direct write is there
            elif isinstance(ans, BaseException):
                failed = failed or ans
            else:
                self._last[subject] = ans.seq
                self.progress.copied += 1
        if failed is not None:
            raise failed


def main(argv: list[str] | None = None) -> int:
    """`python -m winnow.log.repartition --log-url URL --from L0:2 --to L1:3`: copy until SIGTERM (a Kubernetes
    Job during a reshard, docs/log.md); prints progress every few seconds."""
    import argparse
    import signal
    import sys

    from winnow.log.client import LogConfig

    ap = argparse.ArgumentParser(prog="python -m winnow.log.repartition", description=main.__doc__)
    ap.add_argument("--log-url", required=True, help="nats:// URLs, comma-separated")
    ap.add_argument("--from", dest="src", required=True, help="old layout and shard count, e.g. L0:2")
    ap.add_argument("--to", dest="dst", required=True, help="new layout and shard count, e.g. L1:3")
    ap.add_argument("--stream-replicas", type=int, default=1, help="JetStream replicas of the new streams")
    ap.add_argument("--tombstone-ttl-s", type=int, default=7 * 24 * 3600)
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    (old, old_n), (new, new_n) = [(s.split(":")[0], int(s.split(":")[1])) for s in (args.src, args.dst)]

    async def run() -> None:
        doc_log = DocumentLog(LogConfig(url=args.log_url, stream_replicas=args.stream_replicas,
                                        tombstone_ttl_s=args.tombstone_ttl_s, client_name="winnow-repartition"))
        copier = Repartitioner(doc_log, names.check_layout(old), old_n, names.check_layout(new), new_n,
                               args.tombstone_ttl_s)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await copier.start()
        while not stop.is_set():
            p = copier.progress
            print(f"copied {p.copied} skipped_newer {p.skipped_newer} lag {p.lag} caught_up {p.caught_up}",
                  flush=True)
            try:
                await asyncio.wait_for(stop.wait(), 5)
            except asyncio.TimeoutError:
                pass
        await copier.stop()
        await doc_log.close()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
