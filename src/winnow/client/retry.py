"""Retries with exponential backoff and full jitter, honouring the server's RetryInfo.

Only UNAVAILABLE and RESOURCE_EXHAUSTED are retried (the request was refused or never reached a handler), and
only for idempotent calls; every Winnow RPC is idempotent (upserts and deletes included), so all are.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc

from winnow.client.errors import WinnowError

if TYPE_CHECKING:
    from winnow.client._base import Deadline

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed call is retried. `max_attempts=1` turns retries off.

    The n-th retry waits a uniformly random time in [0, min(max_backoff_s, initial_backoff_s * multiplier**n)]
    ("full jitter", so many clients refused at once do not come back at once), and never less than the
    server's RetryInfo delay when it sent one. Retries stop when the call's own timeout would be exceeded.
    """

    max_attempts: int = 5
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 5.0
    multiplier: float = 2.0
    codes: frozenset[grpc.StatusCode] = field(default=RETRYABLE)

    def should_retry(self, err: WinnowError, attempt: int) -> bool:
        """`attempt` counts from 1 (the call that just failed)."""
        return attempt < self.max_attempts and err.code() in self.codes

    def delay(self, err: WinnowError, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt `attempt + 1`."""
        rng = rng or random
        cap = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (attempt - 1))
        wait = rng.uniform(0.0, cap)
        if err.retry_delay is not None:
            # The server knows when it will have room: wait at least that, plus a little spread.
            wait = max(wait, err.retry_delay * (1.0 + rng.uniform(0.0, 0.2)))
        return wait

    def wait_before_retry(self, err: WinnowError, attempt: int, deadline: Deadline) -> float:
        """Seconds to wait before trying a failed call again; raises `err` when it may not be retried (its code,
        the attempts used, or the call's deadline, which the wait would pass)."""
        if not self.should_retry(err, attempt):
            raise err
        wait = self.delay(err, attempt)
        if not deadline.allows(wait):
            raise err
        return wait


NO_RETRY = RetryPolicy(max_attempts=1)
