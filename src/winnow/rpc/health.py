"""Liveness apart from readiness, in grpc.health.v1 terms.

- **Liveness** (health service name `liveness`): SERVING from the moment the server listens until the process
  exits, drain included. The health servicer answers from the event loop, so an answer at all means the process
  is alive and its loop responsive; a blocked loop makes the check time out. Kubernetes' livenessProbe and
  startupProbe use it, so a pod whose dependency is down is taken out of rotation, never restarted for it.
- **Readiness** (service name `""`, `readiness` and each servicer's full name): SERVING once the service has
  warmed up (model loaded, shard loaded) and while every readiness check passes; NOT_SERVING while draining.
  Kubernetes' readinessProbe and load balancers use it.

A readiness check is a callable returning (or awaiting to) True / "" when ready, and False or a reason string
when not. Checks must not wait behind the service's own work (a model forward pass queued behind a batch): they
read progress markers, or touch the backend only when it is idle. Another module adds its own check with
`GrpcService.add_readiness_check("caught_up", fn)` (e.g. a log replica that has not applied its partition yet).

No grpc here: `winnow.rpc.server` maps the verdicts to health statuses.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

LIVENESS = "liveness"
READINESS = "readiness"

Check = Callable[[], "Awaitable[bool | str] | bool | str"]


def _verdict(value: object) -> str:
    """"" when ready, else the reason."""
    if value is True or value == "" or value is None:
        return ""
    if value is False:
        return "check failed"
    return str(value)


class Readiness:
    """Named readiness checks, evaluated together; flips to not-ready only after `failures_to_flip` bad rounds
    in a row (one slow probe must not take a busy replica out), back to ready after one good round."""

    def __init__(self, failures_to_flip: int = 2) -> None:
        self._checks: dict[str, Check] = {}
        self.failures_to_flip = max(1, failures_to_flip)
        self._bad_rounds = 0
        self.reasons: dict[str, str] = {}
        self.ready = True

    def add(self, name: str, check: Check) -> None:
        """Register (or replace) the check `name`."""
        self._checks[name] = check

    def __bool__(self) -> bool:
        return bool(self._checks)

    async def _run(self, name: str, check: Check, timeout_s: float) -> tuple[str, str]:
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await asyncio.wait_for(value, timeout_s)
            return name, _verdict(value)
        except TimeoutError:
            return name, f"no answer within {timeout_s:.1f}s"
        except Exception as exc:  # noqa: BLE001 - a check that raises means not ready
            return name, f"{type(exc).__name__}: {exc}"

    async def evaluate(self, timeout_s: float) -> bool:
        """Run every check once (concurrently); returns the (hysteresis-smoothed) readiness."""
        results = await asyncio.gather(*(self._run(n, c, timeout_s) for n, c in self._checks.items()))
        self.reasons = {n: r for n, r in results if r}
        if self.reasons:
            self._bad_rounds += 1
            if self.ready and self._bad_rounds >= self.failures_to_flip:
                self.ready = False
                log.warning("not ready", extra={"fields": {"reasons": self.reasons}})
        else:
            if not self.ready:
                log.info("ready again")
            self._bad_rounds = 0
            self.ready = True
        return self.ready
