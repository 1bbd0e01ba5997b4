"""Feedback through the gateway: a query's relevance judgments and clicks, recorded in the feedback log
(`winnow.log.feedback`) and acknowledged only once JetStream acknowledged every one of them, like writes.

The batch was validated whole at the edge (`convert_feedback.feedback_from_proto`), so a bad batch records
nothing. A log that cannot be reached is UNAVAILABLE at once, saying nothing was recorded; a batch the log took
only part of is UNAVAILABLE saying how many were. Recording is idempotent (one message per query, document and
kind; the latest wins), so retrying the whole request is always safe.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from winnow.common import metrics
from winnow.common.deadline import Deadline
from winnow.common.errors import Unavailable
from winnow.log.client import AppendResult
from winnow.log.feedback import FeedbackRecord

#: Highest relevance grade accepted: graded scales are small (BEIR uses 0-2, TREC 0-4); anything far above is a
#: caller's bug (a score or a rank sent as a grade), not a judgment.
MAX_RELEVANCE = 100


@dataclass(frozen=True)
class Judgment:
    """One validated judgment of a batch: the document, its grade, and whether it was a click."""

    doc_id: str
    relevance: int
    kind: str


@dataclass(frozen=True)
class FeedbackBatch:
    """A validated Feedback request: one query and its judgments (at most one per document and kind)."""

    query_id: str
    query: str
    judgments: tuple[Judgment, ...]


class FeedbackLogPort(Protocol):
    async def record(self, records: list[FeedbackRecord], timeout: float) -> AppendResult:
        """Publish; returns how many JetStream acknowledged (never raises for the log)."""

    def export(self, after_seq: int = 0, wait_s: float = 5.0) -> AsyncIterator[FeedbackRecord]:
        """Every record after `after_seq`, in log order."""


class FeedbackCore:
    def __init__(self, log: FeedbackLogPort | None, clock: Callable[[], float] = time.time) -> None:
        self.log = log
        self.clock = clock

    def _log(self) -> FeedbackLogPort:
        if self.log is None:
            raise Unavailable("this gateway has no log configured (log_url); feedback is disabled")
        return self.log

    async def record(self, batch: FeedbackBatch, deadline: Deadline) -> int:
        """Judgments recorded: all of the batch, or Unavailable saying how many."""
        log = self._log()
        now = int(self.clock() * 1000)
        records = [FeedbackRecord(batch.query_id, batch.query, j.doc_id, j.relevance, j.kind, now)
                   for j in batch.judgments]
        result = await log.record(records, deadline.timeout(fraction=0.9) or 10.0)
        metrics.FEEDBACK_RECORDED.labels("recorded").inc(result.acked)
        if not result.complete:
            metrics.FEEDBACK_RECORDED.labels("failed").inc(len(records) - result.acked)
            raise Unavailable(_partial_message(result))
        return result.acked

    async def export(self, deadline: Deadline, after_seq: int = 0) -> AsyncIterator[FeedbackRecord]:
        """Every record after `after_seq` in log order (the latest per query, document and kind)."""
        async for record in self._log().export(after_seq, wait_s=deadline.timeout(cap=5.0) or 5.0):
            yield record


def _partial_message(r: AppendResult) -> str:
    if r.acked == 0:  # the log's own message may already say to retry
        return f"nothing was recorded: {r.error}" + ("" if "retry" in r.error else ". Retry the whole request.")
    return (f"only {r.acked} of {r.total} judgments were recorded (acknowledged by the log); {r.error}. "
            "Feedback is idempotent (the latest judgment of a query and document wins): retry the whole request.")
