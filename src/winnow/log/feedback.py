"""The feedback log: users' relevance judgments and clicks per query, kept in JetStream beside the document log.

    stream   WINNOW_FEEDBACK      file storage, `max_msgs_per_subject=1`, the cluster's stream replica count
    subject  winnow_feedback.<query key>.<doc key>.<kind>     keys = blake2b-128 of the ids (`names.doc_key`)

One subject per (query_id, doc_id, kind), each keeping one message, so the latest judgment of a query and document
replaces the one before and the stream stays bounded by the pairs ever judged, not by how often they were. A
click and an explicit judgment of the same pair are kept apart (two kinds, two subjects), so a later click never
erases a judgment; how the two combine into one training pair is the exporter's rule
(`winnow.client.feedback.training_pairs`). The root token is not `winnow.`: a layout may be named anything,
and the partition streams' subjects (`winnow.<layout>.<p>.>`) must never overlap this stream's.

Bodies are JSON objects (the ids and query travel in full; the subject holds only their hashes). The connection is
the `DocumentLog`'s: one per process.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

import nats.errors
import nats.js.errors
from nats.js.api import ConsumerConfig, DeliverPolicy, DiscardPolicy, StorageType, StreamConfig

from winnow.common.errors import Unavailable
from winnow.log import names
from winnow.log.client import AppendResult, DocumentLog, Publish

log = logging.getLogger(__name__)

STREAM = "WINNOW_FEEDBACK"
ROOT = "winnow_feedback"
JUDGMENT = "judgment"
CLICK = "click"
KINDS = (JUDGMENT, CLICK)


@dataclass(frozen=True)
class FeedbackRecord:
    """One judgment or click as the log keeps it; `seq` is its stream sequence (0 until it is in the log)."""

    query_id: str
    query: str
    doc_id: str
    relevance: int
    kind: str
    recorded_at_ms: int
    seq: int = 0


def subject(query_id: str, doc_id: str, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"feedback kind {kind!r} is not one of {', '.join(KINDS)}")
    return f"{ROOT}.{names.doc_key(query_id)}.{names.doc_key(doc_id)}.{kind}"


def encode(record: FeedbackRecord) -> bytes:
    body = asdict(record)
    del body["seq"]  # the log assigns it
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def decode(data: bytes, seq: int) -> FeedbackRecord | None:
    """The record of one message, or None (logged) for a message that is not one: an export skips it."""
    try:
        body = json.loads(data)
        rec = FeedbackRecord(str(body["query_id"]), str(body["query"]), str(body["doc_id"]), int(body["relevance"]),
                             str(body["kind"]), int(body["recorded_at_ms"]), seq)
    except (ValueError, KeyError, TypeError) as exc:
        log.error("skipping an unreadable feedback message", extra={"fields": {"seq": seq, "error": str(exc)}})
        return None
    return rec


class FeedbackLog:
    """Records and exports feedback over a `DocumentLog`'s connection."""

    def __init__(self, doc_log: DocumentLog) -> None:
        self.log = doc_log

    def stream_config(self) -> StreamConfig:
        return StreamConfig(
            name=STREAM, subjects=[ROOT + ".>"], storage=StorageType.FILE, max_msgs_per_subject=1,
            discard=DiscardPolicy.OLD, num_replicas=self.log.config.stream_replicas,
        )

    async def record(self, records: list[FeedbackRecord], timeout: float) -> AppendResult:
        """Publish the records and wait for every acknowledgement (at most `timeout` seconds); never raises for
        the log: the result says how many JetStream acknowledged (a prefix, in order) and why not all."""
        items = [Publish(subject(r.query_id, r.doc_id, r.kind), encode(r)) for r in records]
        return await self.log.publish(self.stream_config(), items, timeout)

    async def export(self, after_seq: int = 0, wait_s: float = 5.0) -> AsyncIterator[FeedbackRecord]:
        """Every record after `after_seq`, in stream order, up to the end of the stream (what it holds when the
        last one is delivered). Unavailable when the log cannot be reached or stops delivering for `wait_s`."""
        js = await self.log.jetstream()
        try:
            info = await js.stream_info(STREAM)
        except nats.js.errors.NotFoundError:
            return  # nothing was ever recorded
        except nats.errors.Error as exc:
            raise _unavailable(exc) from None
        # The last sequence always holds a live message (only older versions of a subject are removed), so a
        # consumer that starts at or before it reaches it.
        if info.state.messages == 0 or info.state.last_seq <= after_seq:
            return
        cfg = (ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1)
               if after_seq else ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
        try:
            sub = await js.subscribe(ROOT + ".>", stream=STREAM, ordered_consumer=True, config=cfg,
                                     idle_heartbeat=1.0, pending_msgs_limit=65536,
                                     pending_bytes_limit=64 * 1024 * 1024)
        except nats.errors.Error as exc:
            raise _unavailable(exc) from None
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=wait_s)
                except nats.errors.TimeoutError:
                    raise Unavailable(f"the feedback log delivered nothing for {wait_s:.1f}s (unreachable?); the "
                                      "export is incomplete: retry, resuming after the last seq received") from None
                except nats.errors.Error as exc:
                    raise _unavailable(exc) from None
                md = msg.metadata
                record = decode(msg.data, md.sequence.stream)
                if record is not None:
                    yield record
                if md.num_pending == 0:
                    return
        finally:
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may already be gone
                pass


def _unavailable(exc: Exception) -> Unavailable:
    return Unavailable(f"the feedback log cannot be read ({type(exc).__name__}); retry shortly")
