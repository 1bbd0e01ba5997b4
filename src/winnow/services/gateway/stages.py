"""What every stage of a gateway search records: the service label its metrics and spans carry, and its time."""

from __future__ import annotations

import time

SERVICE = "gateway"


def ms_since(start: float) -> float:
    """Milliseconds since `start`, a `time.perf_counter()` reading."""
    return (time.perf_counter() - start) * 1000.0
