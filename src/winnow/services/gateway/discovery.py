"""Where each shard's replicas are: a static list, the local launcher's registry file, or DNS; no gRPC here.

Every source is an async iterator of `Topology` values (the layout id and, per shard in order, its replicas'
host:port), yielding whenever the answer changes. `winnow.services.gateway.topology` applies them.

- static: `--shards a:1|a:2,b:1|b:2` (`|` between one shard's replicas, `,` between shards), never changes.
- registry: the file the local launcher rewrites atomically whenever a replica starts on a (new) port or is
  removed: `{"version": n, "layout": "<id>", "shards": {"0": ["127.0.0.1:p", ...], "1": [...]}}`; polled (a stat
  per `poll_s`, a read only when it changed). A file that does not parse is logged and the last good one kept.
- dns: each shard is a name (Kubernetes: the headless Service `winnow-index-<s>`) whose A records are that shard's
  replicas; resolved every `interval_s`. A name that fails to resolve keeps its last known addresses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_LAYOUT = "L0"


@dataclass(frozen=True)
class Topology:
    layout: str
    shards: tuple[tuple[str, ...], ...]  # shard index -> replica addresses (host:port)
    version: int = 0


def parse_shards(entries: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """`["a:1|a:2", "b:1"]` -> `(("a:1", "a:2"), ("b:1",))`; ValueError naming the bad entry."""
    out = []
    for i, entry in enumerate(entries):
        replicas = tuple(dict.fromkeys(t.strip() for t in entry.split("|") if t.strip()))
        if not replicas:
            raise ValueError(f"shard {i} has no replica address (entry {entry!r})")
        for t in replicas:
            host, sep, port = t.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"shard {i}: {t!r} is not host:port")
        out.append(replicas)
    return tuple(out)


async def static_source(topology: Topology) -> AsyncIterator[Topology]:
    yield topology
    await asyncio.Event().wait()  # never changes


def read_registry(path: Path) -> Topology:
    """The registry file as a Topology; ValueError saying what is wrong with it."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("shards"), dict):
        raise ValueError(f"{path}: expected an object with a 'shards' object")
    shards = doc["shards"]
    keys = sorted(shards, key=lambda k: int(k) if str(k).isdigit() else -1)
    if [str(k) for k in keys] != [str(i) for i in range(len(keys))]:
        raise ValueError(f"{path}: shard keys must be 0..N-1, got {sorted(shards)}")
    entries = []
    for k in keys:
        v = shards[k]
        if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
            raise ValueError(f"{path}: shard {k} must list its replicas as host:port strings")
        entries.append("|".join(v))
    return Topology(str(doc.get("layout") or DEFAULT_LAYOUT), parse_shards(entries) if entries else (),
                    int(doc.get("version", 0)))


async def registry_source(path: str | Path, poll_s: float = 0.2) -> AsyncIterator[Topology]:
    path = Path(path)
    seen_stat, last, complained = None, None, None
    while True:
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp is not None and stamp != seen_stat:
            seen_stat = stamp
            try:
                topo = read_registry(path)
            except ValueError as exc:
                if str(exc) != complained:
                    log.warning("shard registry unreadable; keeping the last good one",
                                extra={"fields": {"error": str(exc)}})
                    complained = str(exc)
                seen_stat = None  # read again next time (it may be mid-write on a filesystem without rename)
            else:
                complained = None
                if topo != last:
                    last = topo
                    yield topo
        await asyncio.sleep(poll_s)


async def resolve_all(host: str, port: int) -> list[str]:
    """Every IPv4/IPv6 address of `host` as sorted host:port strings."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addrs = {info[4][0] for info in infos}
    return sorted(f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addrs)


async def dns_source(names: Sequence[str], layout: str, interval_s: float = 5.0,
                     resolve: Callable[[str, int], object] = resolve_all) -> AsyncIterator[Topology]:
    """`names` are host:port per shard; each host's A/AAAA records are that shard's replicas."""
    parsed = []
    for n in names:
        host, _, port = n.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{n!r} is not host:port")
        parsed.append((host, int(port)))
    known: list[tuple[str, ...]] = [() for _ in parsed]
    last = None
    while True:
        results = await asyncio.gather(*(resolve(h, p) for h, p in parsed), return_exceptions=True)
        for i, res in enumerate(results):
            if isinstance(res, BaseException) or not res:
                if not known[i]:
                    log.warning("shard name does not resolve yet",
                                extra={"fields": {"name": names[i], "error": repr(res)}})
                continue
            known[i] = tuple(res)  # type: ignore[arg-type]
        if all(known):
            topo = Topology(layout, tuple(known))
            if topo != last:
                last = topo
                yield topo
        await asyncio.sleep(interval_s)
