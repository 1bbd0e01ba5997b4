"""The document log's message codec and names: round trips, refusals, subjects that NATS accepts."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.log import codec, names


def test_upsert_round_trip_keeps_vector_text_and_metadata():
    v = np.arange(384, dtype=np.float32) / 384
    r = codec.decode(codec.encode_upsert("doc é/1", v, "some text ✓", '{"a": 1}'), seq=7)
    assert (r.op, r.id, r.text, r.metadata_json, r.seq) == (codec.OP_UPSERT, "doc é/1", "some text ✓", '{"a": 1}', 7)
    assert r.vector.dtype == np.float32 and np.array_equal(r.vector, v)


def test_delete_round_trip():
    r = codec.decode(codec.encode_delete("gone"), seq=3)
    assert (r.op, r.id, r.vector, r.seq) == (codec.OP_DELETE, "gone", None, 3)


@pytest.mark.parametrize("data", [b"", b"\x02\x01", codec.encode_upsert("a", np.ones(4), "t", "{}")[:-1],
                                  b"\x01\x09\x00\x00\x00\x00"])
def test_malformed_messages_are_refused_clearly(data):
    with pytest.raises(codec.CodecError):
        codec.decode(data)


def test_subjects_are_one_token_per_document_whatever_the_id():
    s = names.subject("L0", 3, "a.b *>  c")
    head, key = s.rsplit(".", 1)
    assert head == "winnow.L0.3" and len(key) == 32 and key.isalnum()
    assert names.subject("L0", 3, "a.b *>  c") == s != names.subject("L0", 3, "a.b *> c")
    assert names.stream("L0", 3) == "WINNOW_L0_P3"
    with pytest.raises(ValueError):
        names.stream("bad.layout", 0)
