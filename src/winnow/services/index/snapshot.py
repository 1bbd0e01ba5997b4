"""Atomic snapshots of a shard: written to `snap-<generation>.tmp/`, every file fsynced, then renamed.

A directory named `snap-<generation>` is therefore always complete; a crash mid-write leaves only a `.tmp`
that start-up deletes. Contents: meta.json, live.npy, docs.jsonl (id, text, metadata per slot; null for dead
slots), faiss.index when the index is trained (so HNSW is not rebuilt on every start), and vectors.npy unless
the saved index already holds every vector in slot order (Flat, HNSWx,Flat), which halves a snapshot's bytes.
No pickle: every file is plain data.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from winnow.services.index.vectors import storage_view

FORMAT = 1


@dataclass
class SnapshotData:
    generation: int
    dim: int
    index_factory: str
    vectors: np.ndarray
    live: np.ndarray
    ids: list[str | None]
    texts: list[str]
    metas: list[str]
    index: faiss.Index | None  # None when untrained
    vectors_in_index: bool = False  # `vectors` is a view of `index`'s flat storage: keep the index alive with it
    log: dict = field(default_factory=dict)  # which log the generation (= applied sequence) belongs to, and when


def fsync_dir(path: Path) -> None:
    """Make a rename/creation in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def write(data_dir: Path, snap: SnapshotData, fsync: bool = True) -> Path:
    """Write a complete snapshot atomically; returns its directory."""
    final = data_dir / f"snap-{snap.generation:020d}"
    tmp = data_dir / (final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    in_index = snap.index is not None and snap.vectors_in_index
    if not in_index:
        np.save(tmp / "vectors.npy", snap.vectors)
    np.save(tmp / "live.npy", snap.live)
    with open(tmp / "docs.jsonl", "w", encoding="utf-8") as f:
        for i, t, m in zip(snap.ids, snap.texts, snap.metas):
            f.write(json.dumps(None if i is None else [i, t, m], ensure_ascii=False) + "\n")
    if snap.index is not None:
        faiss.write_index(snap.index, str(tmp / "faiss.index"))
    meta = {"format": FORMAT, "generation": snap.generation, "dim": snap.dim, "index_factory": snap.index_factory,
            "slots": int(snap.vectors.shape[0]), "trained": snap.index is not None, "vectors_in_index": in_index, "log": snap.log}
    (tmp / "meta.json").write_text(json.dumps(meta))
    if fsync:
        for p in tmp.iterdir():
            _fsync_file(p)
        fsync_dir(tmp)
    if final.exists():  # same generation written twice (e.g. snapshot at close right after one): replace
        shutil.rmtree(final)
    os.rename(tmp, final)
    if fsync:
        fsync_dir(data_dir)
    return final


def latest(data_dir: Path) -> Path | None:
    """The newest complete snapshot; removes leftovers of interrupted ones."""
    for tmp in data_dir.glob("snap-*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)
    snaps = sorted(p for p in data_dir.glob("snap-*") if p.is_dir())
    return snaps[-1] if snaps else None


def generation_of(path: Path) -> int:
    return int(path.name.split("-", 1)[1])


def load(path: Path) -> SnapshotData:
    """Read a snapshot written by `write`."""
    meta = json.loads((path / "meta.json").read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"snapshot {path.name} has format {meta.get('format')}; this build reads {FORMAT}")
    live = np.load(path / "live.npy")
    ids: list[str | None] = []
    texts: list[str] = []
    metas: list[str] = []
    with open(path / "docs.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row is None:
                ids.append(None), texts.append(""), metas.append("{}")
            else:
                ids.append(row[0]), texts.append(row[1]), metas.append(row[2])
    index = faiss.read_index(str(path / "faiss.index")) if meta["trained"] else None
    in_index = bool(meta.get("vectors_in_index")) and index is not None
    if in_index:
        vectors = storage_view(index, meta["slots"])
    else:
        vectors = np.load(path / "vectors.npy", mmap_mode="r")  # copied only where the store needs its own matrix
    return SnapshotData(meta["generation"], meta["dim"], meta["index_factory"], vectors, live, ids, texts, metas,
                        index, in_index, meta.get("log", {}))


def prune(data_dir: Path, keep: Path) -> None:
    """Delete every snapshot older than `keep`."""
    for p in data_dir.glob("snap-*"):
        if p.is_dir() and p.name < keep.name:
            shutil.rmtree(p, ignore_errors=True)
