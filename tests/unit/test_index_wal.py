"""Durability of the shard core: log replay, torn tails, snapshots (atomic, pruned, compacting)."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.common.errors import Internal
from winnow.services.index import wal
from winnow.services.index.model import Doc, SearchQuery
from winnow.services.index.settings import IndexSettings
from winnow.services.index.shard import Shard

DIM = 8


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def settings(tmp_path, **overrides) -> IndexSettings:
    return IndexSettings(**{"data_dir": str(tmp_path / "d"), "dim": DIM, "coarse_dims": [], **overrides})


def opened(s: IndexSettings) -> Shard:
    shard = Shard(s.shard_config())
    shard.open()
    return shard


def crash(shard: Shard) -> None:
    """What kill -9 leaves: the log file closed without a final snapshot."""
    shard._wal.close()


def contents(shard: Shard) -> dict[str, str]:
    return {i: shard.state.texts[s] for i, s in shard.state.slot_of.items()}


def test_codec_roundtrip():
    docs = [Doc("a", vec(1), "tëxt", '{"k": 1}'), Doc("b", vec(2), "", "{}")]
    rec = wal.decode(7, wal.encode(wal.OP_UPSERT, docs=docs), DIM)
    assert rec.generation == 7 and [d.id for d in rec.docs] == ["a", "b"] and rec.docs[0].text == "tëxt"
    np.testing.assert_array_equal(rec.docs[1].vector, docs[1].vector)
    assert wal.decode(8, wal.encode(wal.OP_DELETE, ids=["a", "é"]), DIM).ids == ["a", "é"]


def test_replay_without_snapshot(tmp_path):
    s = settings(tmp_path)
    a = opened(s)
    for i in range(20):
        a.upsert([Doc(f"d{i}", vec(i), f"t{i}", "{}")])
    a.delete(["d3", "d4"])
    a.upsert([Doc("d5", vec(99), "new five", "{}")])
    want, gen = contents(a), a.generation
    crash(a)
    b = opened(s)
    assert contents(b) == want and b.generation == gen == 22
    assert b.search(SearchQuery(vec(99), 1)).dense[0].id == "d5"
    assert {h.id for h in b.search(SearchQuery(None, 0, text="five", lexical_k=5)).lexical} == {"d5"}
    b.close()


def test_torn_tail_is_truncated_and_appends_continue(tmp_path):
    s = settings(tmp_path)
    a = opened(s)
    a.upsert([Doc("a", vec(1), "", "{}")])
    a.upsert([Doc("b", vec(2), "", "{}")])
    path = a._wal.path
    crash(a)
    data = path.read_bytes()
    path.write_bytes(data + data[: len(data) // 2][:30])  # a half-written third record
    b = opened(s)
    assert contents(b).keys() == {"a", "b"} and b.generation == 2
    b.upsert([Doc("c", vec(3), "", "{}")])
    crash(b)
    c = opened(s)
    assert contents(c).keys() == {"a", "b", "c"} and c.generation == 3
    c.close()


def test_corrupt_older_segment_refuses_to_start(tmp_path):
    s = settings(tmp_path)
    a = opened(s)
    a.upsert([Doc("a", vec(1), "aaaa", "{}")])
    a.upsert([Doc("b", vec(2), "bbbb", "{}")])
    path = a._wal.path
    crash(a)
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF  # inside the first record's body
    path.write_bytes(bytes(data))
    # a newer segment exists, so this one is not the tail a crash can tear: losing "a" and "b" would be silent
    path.with_name("wal-99999999999999999999.log").write_bytes(b"")
    with pytest.raises(Internal, match="corrupt"):
        opened(s)


def test_snapshot_then_replay_and_prune(tmp_path):
    s = settings(tmp_path, snapshot_every=5, coarse_dims=[4])
    a = opened(s)
    for i in range(12):
        a.upsert([Doc(f"d{i}", vec(i), f"t{i}", "{}")])
    names = sorted(p.name for p in (tmp_path / "d").iterdir())
    assert names == ["snap-00000000000000000010", "wal-00000000000000000010.log"]
    a.delete(["d0"])
    want = contents(a)
    crash(a)
    b = opened(s)
    assert contents(b) == want and b.generation == 13
    b.close()  # snapshot at close: the next start replays nothing
    c = opened(s)
    assert c._since_snapshot == 0 and contents(c) == want
    assert c.search(SearchQuery(vec(5), 1, coarse_dim=4)).dense[0].id == "d5"  # coarse views restored too
    c.close()


def test_interrupted_snapshot_is_ignored(tmp_path):
    s = settings(tmp_path)
    a = opened(s)
    a.upsert([Doc("a", vec(1), "", "{}")])
    crash(a)
    junk = tmp_path / "d" / "snap-00000000000000000005.tmp"
    junk.mkdir()
    (junk / "vectors.npy").write_bytes(b"partial")
    b = opened(s)
    assert contents(b).keys() == {"a"} and not junk.exists()
    b.close()


def test_compaction_at_snapshot_keeps_documents(tmp_path):
    s = settings(tmp_path, snapshot_every=1000, compact_dead_fraction=0.3)
    a = opened(s)
    a.upsert([Doc(f"d{i}", vec(i), f"t{i}", '{"g": %d}' % (i % 2)) for i in range(100)])
    a.delete([f"d{i}" for i in range(0, 100, 2)])
    a.close()  # snapshot with 50% dead slots -> compacted
    b = opened(s)
    assert b.state.vectors.n == 50 and contents(b) == {f"d{i}": f"t{i}" for i in range(1, 100, 2)}
    assert b.search(SearchQuery(vec(7), 1)).dense[0].id == "d7"
    b.close()


def test_trained_ivf_survives_restart(tmp_path):
    s = settings(tmp_path, index_factory="IVF4,Flat", train_min_vectors=10_000)
    a = opened(s)
    a.upsert([Doc(f"d{i}", vec(i), "", "{}") for i in range(300)])
    a.train()
    a.upsert([Doc("late", vec(1000), "", "{}")])
    crash(a)
    b = opened(s)
    assert b.stats().trained and b.generation == 3
    assert b.search(SearchQuery(vec(1000), 1, nprobe=4)).dense[0].id == "late"
    b.close()


def test_changed_index_factory_rebuilds_from_snapshot(tmp_path):
    a = opened(settings(tmp_path, index_factory="HNSW16,Flat"))
    a.upsert([Doc(f"d{i}", vec(i), "", "{}") for i in range(50)])
    a.close()
    b = opened(settings(tmp_path, index_factory="IVF2,Flat", train_min_vectors=10))
    assert b.stats().trained and b.stats().index_factory == "IVF2,Flat" and b.stats().count == 50
    assert b.search(SearchQuery(vec(9), 1, nprobe=2)).dense[0].id == "d9"
    b.close()
    c = opened(settings(tmp_path, index_factory="Flat"))
    assert c.search(SearchQuery(vec(9), 1)).dense[0].id == "d9"
    np.testing.assert_allclose(c.state.vectors.vectors()[c.state.slot_of["d9"]], vec(9), rtol=1e-6)
    c.close()
