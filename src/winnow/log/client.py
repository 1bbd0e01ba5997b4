"""The JetStream client of the document log: streams per partition, acknowledged appends, ordered replay.

Writers (the gateway, a reshard) call `append`; it returns only once JetStream acknowledged every message, and
says how many it acknowledged when it could not get them all. Readers (shard replicas) open a `PartitionReader`
at a sequence and receive every message after it in order. A log that cannot be reached fails fast with
`Unavailable`: the connection is made lazily, and a client that is reconnecting refuses writes instead of
buffering them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

import nats
import nats.aio.client
import nats.errors
import nats.js.errors
from nats.js.api import ConsumerConfig, DeliverPolicy, DiscardPolicy, Header, PubAck, StorageType, StreamConfig

from winnow.common.errors import Unavailable
from winnow.log import codec, names

log = logging.getLogger(__name__)


@dataclass
class Message:
    """One message to append: the document id (routing and subject) and its encoded body."""

    doc_id: str
    body: bytes
    tombstone: bool = False


@dataclass(frozen=True)
class Publish:
    """One message for `DocumentLog.publish`: its subject, body and optional per-message TTL (seconds)."""

    subject: str
    body: bytes
    ttl_s: int | None = None


class _Acks:
    """JetStream's answers to this connection's publishes, on one wildcard inbox subscription: a PubAck, or the
    error JetStream answered with, as an exception on the message's future. (nats-py's `publish_async` never
    resolves a future whose answer is an error, nats.py#985: a message JetStream refused, with 503 while it
    recovers after a restart or 10071 for a wrong expected sequence, would look lost until a timeout, and its
    reason would be lost.)"""

    def __init__(self) -> None:
        self.prefix = ""
        self.waiting: dict[str, asyncio.Future] = {}
        self._nc: nats.aio.client.Client | None = None
        self._ids = 0

    async def ready(self, nc: nats.aio.client.Client) -> None:
        """Subscribed on this connection (a reconnect keeps the subscription; a new connection needs one)."""
        if self._nc is not nc:
            prefix = nc.new_inbox()
            await nc.subscribe(prefix + ".*", cb=self._answer)
            self.prefix, self._nc = prefix, nc

    def expect(self) -> tuple[str, asyncio.Future]:
        self._ids += 1
        reply = f"{self.prefix}.{self._ids}"
        fut = asyncio.get_running_loop().create_future()
        self.waiting[reply] = fut
        return reply, fut

    async def _answer(self, msg) -> None:
        fut = self.waiting.pop(msg.subject, None)
        if fut is None or fut.done():
            return
        try:
            if msg.headers and msg.headers.get(Header.STATUS) == "503":
                raise nats.errors.NoRespondersError
            resp = json.loads(msg.data)
            if "error" in resp:
                nats.js.errors.APIError.from_error(resp["error"])  # raises the typed error (ServiceUnavailable...)
            fut.set_result(PubAck.from_response(resp))
        except Exception as exc:  # noqa: BLE001 - whatever the answer was, it is this message's outcome
            fut.set_exception(exc)


@dataclass
class AppendResult:
    """How much of one partition's batch JetStream acknowledged, and the last acknowledged sequence."""

    partition: int
    acked: int
    total: int
    last_seq: int = 0
    error: str = ""

    @property
    def complete(self) -> bool:
        return self.acked == self.total and not self.error


@dataclass
class Head:
    """The state of one partition's stream."""

    first_seq: int
    last_seq: int
    messages: int
    bytes: int = 0


@dataclass
class LogConfig:
    """Plain values the log client needs (every service maps its settings onto these)."""

    url: str = "nats://127.0.0.1:4222"
    stream_replicas: int = 1
    tombstone_ttl_s: int = 7 * 24 * 3600
    connect_timeout_s: float = 2.0
    max_stream_bytes: int = -1
    client_name: str = "winnow"
    servers: list[str] = field(default_factory=list)

    def server_list(self) -> list[str]:
        return self.servers or [u.strip() for u in self.url.split(",") if u.strip()]


class DocumentLog:
    """One NATS connection, shared by every partition a process writes or reads."""

    def __init__(self, config: LogConfig) -> None:
        self.config = config
        self._nc: nats.aio.client.Client | None = None
        self._js = None
        self._acks = _Acks()  # answers to this client's publishes
        self._lock = asyncio.Lock()
        self._streams: set[str] = set()
        self._closing = False

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def _errored(self, exc: Exception) -> None:
        log.debug("log connection: %s", exc)

    async def _disconnected(self) -> None:
        if self._closing:
            return
        log.warning("document log disconnected; reconnecting", extra={"fields": {"url": self.config.url}})

    async def _reconnected(self) -> None:
        log.info("document log reconnected", extra={"fields": {"url": self.config.url}})

    async def jetstream(self):
        """The JetStream context, connecting on first use; Unavailable at once when the log cannot be reached."""
        if self._nc is not None and not self._nc.is_closed:
            if not self._nc.is_connected:
                raise Unavailable(f"the document log ({self.config.url}) is unreachable (reconnecting); "
                                  "nothing was written, retry shortly")
            return self._js
        async with self._lock:
            if self._nc is None or self._nc.is_closed:
                nc = nats.aio.client.Client()
                try:
                    # nats-py retries a first connect forever when reconnects are on: bound it ourselves.
                    await asyncio.wait_for(nc.connect(
                        servers=self.config.server_list(), name=self.config.client_name,
                        connect_timeout=self.config.connect_timeout_s, allow_reconnect=True,
                        max_reconnect_attempts=-1, reconnect_time_wait=0.25, error_cb=self._errored,
                        disconnected_cb=self._disconnected, reconnected_cb=self._reconnected,
                    ), self.config.connect_timeout_s * 2)
                except Exception as exc:  # noqa: BLE001 - every connect failure means the same to a caller
                    try:
                        await asyncio.wait_for(nc.close(), 1)
                    except Exception:  # noqa: BLE001 - it never connected
                        pass
                    raise Unavailable(f"the document log ({self.config.url}) is unreachable "
                                      f"({type(exc).__name__}); nothing was written, retry shortly") from None
                self._nc = nc
                self._js = self._nc.jetstream()
        return self._js

    async def ensure_stream(self, layout: str, partition: int) -> str:
        """Create the partition's stream if missing (idempotent); returns its name."""
        return await self.ensure(self._partition_stream(layout, partition))

    def _partition_stream(self, layout: str, partition: int) -> StreamConfig:
        return StreamConfig(
            name=names.stream(layout, partition), subjects=[names.prefix(layout, partition) + ".>"],
            storage=StorageType.FILE, max_msgs_per_subject=1, allow_msg_ttl=True, discard=DiscardPolicy.OLD,
            num_replicas=self.config.stream_replicas, max_bytes=self.config.max_stream_bytes,
        )

    async def ensure(self, cfg: StreamConfig) -> str:
        """Create the stream `cfg` describes if missing (idempotent, once per process); returns its name."""
        name = cfg.name
        if name in self._streams:
            return name
        js = await self.jetstream()
        try:
            await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            try:
                await js.add_stream(cfg)
            except nats.js.errors.BadRequestError as exc:
                if "already in use" not in str(exc):  # another writer created it first
                    raise
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError) as exc:
            raise Unavailable(f"the document log has no JetStream available ({type(exc).__name__}); "
                              "nothing was written, retry shortly") from None
        self._streams.add(name)
        return name

    async def append(self, layout: str, partition: int, messages: list[Message], timeout: float) -> AppendResult:
        """Publish `messages` to the partition and wait for every acknowledgement (at most `timeout` seconds)."""
        return await self.publish(self._partition_stream(layout, partition), [
            Publish(names.subject(layout, partition, m.doc_id), m.body,
                    self.config.tombstone_ttl_s if m.tombstone else None) for m in messages], timeout, partition)

    async def publish(self, cfg: StreamConfig, items: list[Publish], timeout: float,
                      partition: int = 0) -> AppendResult:
        """Publish `items` to the stream `cfg` (created if missing) and wait for every acknowledgement (at most
        `timeout` seconds); never raises for the log: the result says how many were acknowledged, and why not all."""
        result = AppendResult(partition, 0, len(items))
        if not items:
            return result
        try:
            await self.ensure(cfg)
            answers = await self.acknowledged(
                [(it.subject, it.body, {Header.EXPECTED_STREAM: cfg.name,
                                        **({Header.MSG_TTL: str(int(it.ttl_s))} if it.ttl_s else {})})
                 for it in items], timeout)
        except Unavailable as exc:
            result.error = str(exc)
            return result
        except Exception as exc:  # noqa: BLE001 - a failed publish is reported as partial, never raised raw
            result.error = f"publishing failed ({type(exc).__name__})"
            return result
        # Acknowledgements are counted in publish order: a message after an unacknowledged one may also be in the
        # log, but only a prefix is promised to the caller.
        for ans in answers:
            if isinstance(ans, PubAck):
                result.acked += 1
                result.last_seq = max(result.last_seq, ans.seq)
            elif not result.error:
                result.error = (f"JetStream did not acknowledge within {timeout:.1f}s"
                                if isinstance(ans, TimeoutError)
                                else f"JetStream refused a message ({type(ans).__name__}: {ans})")
        return result

    async def acknowledged(self, sends: list[tuple[str, bytes, dict[str, str]]],
                           timeout: float) -> list[PubAck | BaseException]:
        """Publish (subject, body, headers) messages in this order, all in flight at once; per message its PubAck
        or what went wrong (JetStream's refusal, TimeoutError after `timeout` seconds). Raises Unavailable while
        the log is unreachable or reconnecting (nothing sent)."""
        await self.jetstream()
        nc = self._nc
        assert nc is not None
        await self._acks.ready(nc)
        replies, futures = [], []
        try:
            for subject, body, headers in sends:
                reply, fut = self._acks.expect()
                replies.append(reply)
                futures.append(fut)
                await nc.publish(subject, body, reply=reply, headers=headers)
            done, _ = await asyncio.wait(futures, timeout=timeout) if futures else (set(), set())
        finally:
            for reply in replies:
                self._acks.waiting.pop(reply, None)
        out: list[PubAck | BaseException] = []
        for fut in futures:
            if fut in done:
                out.append(fut.exception() or fut.result())
            else:
                fut.cancel()
                out.append(TimeoutError(f"no acknowledgement within {timeout:.1f}s"))
        return out

    async def head(self, layout: str, partition: int) -> Head:
        """The partition's first/last sequence and message count."""
        js = await self.jetstream()
        try:
            info = await js.stream_info(names.stream(layout, partition))
        except nats.js.errors.NotFoundError:
            return Head(0, 0, 0)
        st = info.state
        return Head(st.first_seq, st.last_seq, st.messages, st.bytes)

    async def delete_stream(self, layout: str, partition: int) -> None:
        js = await self.jetstream()
        try:
            await js.delete_stream(names.stream(layout, partition))
        except nats.js.errors.NotFoundError:
            pass
        self._streams.discard(names.stream(layout, partition))

    def reader(self, layout: str, partition: int) -> "PartitionReader":
        return PartitionReader(self, layout, partition)

    async def close(self) -> None:
        self._closing = True
        if self._nc is not None and not self._nc.is_closed:
            try:
                await asyncio.wait_for(self._nc.close(), 5)
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass
        self._nc = None


class PartitionReader:
    """Every message of one partition after a sequence, in order (an ordered push consumer, re-created on
    failures); `lag` is the number of messages the log holds that this reader has not delivered yet."""

    def __init__(self, log_: DocumentLog, layout: str, partition: int) -> None:
        self.log = log_
        self.layout = layout
        self.partition = partition
        self._sub = None
        self.lag: int | None = None  # unknown until the first message or the first check

    async def open(self, after_seq: int) -> None:
        """Start delivering at `after_seq + 1`."""
        await self.close()
        js = await self.log.jetstream()
        await self.log.ensure_stream(self.layout, self.partition)
        cfg = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1)
        self._sub = await js.subscribe(
            names.prefix(self.layout, self.partition) + ".>", stream=names.stream(self.layout, self.partition),
            ordered_consumer=True, config=cfg, idle_heartbeat=1.0, pending_msgs_limit=65536,
            pending_bytes_limit=512 * 1024 * 1024)
        self.lag = None

    async def batch(self, max_messages: int, wait_s: float) -> list[codec.LogRecord]:
        """The next messages (at most `max_messages`), waiting up to `wait_s` for the first one."""
        assert self._sub is not None, "open() first"
        out: list[codec.LogRecord] = []
        try:
            msg = await self._sub.next_msg(timeout=wait_s)
        except (nats.errors.TimeoutError, asyncio.TimeoutError):
            return out
        end = time.monotonic() + 0.05
        while True:
            md = msg.metadata
            out.append(_decode(msg.data, md.sequence.stream))
            self.lag = md.num_pending
            if len(out) >= max_messages or self._sub.pending_msgs == 0 or time.monotonic() > end:
                break
            msg = await self._sub.next_msg(timeout=1.0)
        return out

    async def pending(self) -> int:
        """Messages not yet delivered, asked of the server (used when nothing arrives)."""
        assert self._sub is not None
        info = await self._sub.consumer_info()
        self.lag = int(info.num_pending) + self._sub.pending_msgs
        return self.lag

    async def close(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may already be gone
                pass
            self._sub = None


def _decode(data: bytes, seq: int) -> codec.LogRecord:
    try:
        return codec.decode(data, seq)
    except codec.CodecError as exc:
        # A message no replica can read must not stop the partition: it is skipped, loudly, and counted.
        log.error("skipping an unreadable log message", extra={"fields": {"seq": seq, "error": str(exc)}})
        return codec.LogRecord(0, "", seq=seq)
