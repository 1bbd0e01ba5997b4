"""A request's absolute deadline; every outgoing call gets a timeout derived from it. No transport here:
`winnow.rpc.channels.deadline_from_context` builds one from a gRPC call's own deadline."""

from __future__ import annotations

import time


class Deadline:
    """A request's absolute deadline; every outgoing call gets a timeout derived from it."""

    def __init__(self, timeout_s: float | None) -> None:
        self.expires = None if timeout_s is None else time.monotonic() + timeout_s

    def remaining(self) -> float | None:
        return None if self.expires is None else self.expires - time.monotonic()

    def expired(self) -> bool:
        r = self.remaining()
        return r is not None and r <= 0

    def timeout(self, fraction: float = 1.0, cap: float | None = None, reserve_s: float = 0.0) -> float | None:
        """Seconds for one outgoing call: `fraction` of what is left after keeping `reserve_s` for later stages."""
        r = self.remaining()
        if r is None:
            return cap
        t = max(0.001, (r - reserve_s) * fraction)
        return min(t, cap) if cap is not None else t
