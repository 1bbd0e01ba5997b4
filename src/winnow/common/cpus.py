"""How many CPUs this process may really use (its affinity mask, capped by a container's cgroup CPU quota):
the default thread count of torch and of FAISS builds, instead of the node's core count."""

from __future__ import annotations

import os
from pathlib import Path


def _cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup, in CPUs (a container's CPU limit), or None when unlimited/unknown.
    cgroup v2 `cpu.max` ("quota period" or "max period"), else v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`."""
    try:
        v2 = root / "cpu.max"
        if v2.exists():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        q, p = root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"
        if q.exists() and p.exists():
            quota_us, period_us = int(q.read_text()), int(p.read_text())
            return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None
    return None


def available_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may really use: its affinity mask, capped by its cgroup's CPU quota (rounded down,
    at least 1). Torch's default is the machine's core count, which in a container limited to 2 CPUs of a
    64-core node starts 64 threads that spin against each other and the quota."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_cpus(cgroup_root)
    if quota is not None:
        n = min(n, int(quota))
    return max(1, n)
