"""The peer-bench driver side: one engine per process, driven over JSON lines on stdin/stdout.

This file imports only the standard library and numpy, because it also runs inside the peers' own virtual
environment (Milvus Lite), which does not have Winnow installed: a driver script puts this directory on sys.path
and calls `serve(engine)`. Every timing is taken here, inside the engine's client process, so the pipe to the
bench process is never part of a measured latency.

Commands (one JSON object a line; the answer is one JSON object a line):
  {"cmd": "quality", "mode": m, "text": t}            -> {"run": {query_id: [doc ids, best first]}}
  {"cmd": "latency", "mode": m, "text": t, "n": n}    -> {"ms": [n per-query latencies]}
  {"cmd": "qps", "mode": m, "text": t, "clients": c, "seconds": s} -> {"qps": q, "requests": r}
  {"cmd": "rss"}                                      -> {"rss_mb": this process and its children}
  {"cmd": "quit"}
mode is "hybrid", "dense" or "lexical"; text false = the precomputed query vector (engine only), true = the
query text, embedded inside the measured call (end to end).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np


class Engine(Protocol):
    def search(self, qi: int, mode: str, text: bool) -> list[str]:
        """Doc ids of query `qi`'s top k, best first."""


class Workload:
    """The files `winnow.bench.peers.workload` writes: the same texts and vectors for every engine."""

    def __init__(self, root: str | Path) -> None:
        root = Path(root)
        meta = json.loads((root / "workload.json").read_text())
        self.k, self.window, self.model_dir = meta["k"], meta["window"], meta["model_dir"]
        self.max_seq_length = meta["max_seq_length"]
        self.doc_ids: list[str] = meta["doc_ids"]
        self.query_ids: list[str] = meta["query_ids"]
        self.query_texts: list[str] = meta["query_texts"]
        self.doc_texts: list[str] = json.loads((root / "doc_texts.json").read_text())
        self.doc_vectors = np.load(root / "doc_vectors.npy", mmap_mode="r")
        self.query_vectors = np.load(root / "query_vectors.npy")

    def encoder(self):
        """The query encoder (sentence-transformers MiniLM, the same settings the vectors were made with)."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(self.model_dir, device="cpu")
        model.max_seq_length = self.max_seq_length
        return lambda text: model.encode([text], normalize_embeddings=True, convert_to_numpy=True)[0]


def rss_mb(pid: int | None = None) -> float:
    """Resident set size of a process and all its descendants, MB (shared pages are counted once per process)."""
    pid = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return round(total, 1)


def _latency(engine: Engine, mode: str, text: bool, n: int, start: int, nq: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        engine.search((start + i) % nq, mode, text)
        out.append((time.perf_counter() - t) * 1000)
    return out


def _qps(engine: Engine, mode: str, text: bool, clients: int, seconds: float, nq: int) -> dict:
    stop = time.perf_counter() + seconds
    counts = [0] * clients
    failed = [0] * clients
    errors: list[str] = []

    def client(c: int) -> None:
        i = c * 37
        while time.perf_counter() < stop:
            try:
                engine.search(i % nq, mode, text)
                counts[c] += 1
            except Exception as exc:  # noqa: BLE001 - a refused or failed query: counted, the client goes on
                failed[c] += 1
                if len(errors) < 3:
                    errors.append(repr(exc)[:300])
                time.sleep(0.05)  # what a polite client does when told to back off
            i += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"qps": sum(counts) / wall, "requests": sum(counts), "failed": sum(failed), "errors": errors[:3]}


def serve(engine: Engine, workload: Workload, ready: dict) -> None:
    """Answer commands until "quit" or end of input. Anything the engine prints goes to stderr."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr
    out.write(json.dumps({"ready": True, "rss_mb": rss_mb(), **ready}) + "\n")
    nq, cursor = len(workload.query_ids), 0
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg["cmd"]
        try:
            if cmd == "quit":
                break
            if cmd == "quality":
                run = {qid: engine.search(i, msg["mode"], msg["text"]) for i, qid in enumerate(workload.query_ids)}
                answer: dict = {"run": run}
            elif cmd == "latency":
                answer = {"ms": _latency(engine, msg["mode"], msg["text"], msg["n"], cursor, nq)}
                cursor += msg["n"]
            elif cmd == "qps":
                answer = _qps(engine, msg["mode"], msg["text"], msg["clients"], msg["seconds"], nq)
            elif cmd == "rss":
                answer = {"rss_mb": rss_mb()}
            else:
                answer = {"error": f"unknown command {cmd!r}"}
        except Exception as exc:  # noqa: BLE001 - the bench reports it and skips this measurement
            answer = {"error": repr(exc)}
        out.write(json.dumps(answer) + "\n")
