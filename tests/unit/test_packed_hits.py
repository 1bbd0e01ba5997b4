"""The packed shard answer (ids + float32 scores, payloads of each list's top only) survives the wire intact."""

import pytest

from winnow.services.gateway import convert as gateway_convert
from winnow.services.index import convert as index_convert
from winnow.services.index.model import Hit, ShardResult


def test_packed_round_trip_keeps_order_scores_and_only_the_top_payloads():
    dense = [Hit("a", 0.9, "text a", '{"y": 1}'), Hit("b", 0.5, "text b", ""), Hit("c", 0.25)]
    lexical = [Hit("b", 7.5, "text b", ""), Hit("d", 3.0)]
    wire = index_convert.shard_result_to_proto(ShardResult(dense, lexical, 42, {}), packed=True)
    assert wire.packed and not wire.dense and not wire.lexical  # no Hit message per candidate
    got = gateway_convert.shard_result_from_proto(wire)
    assert got.pairs(False) == [(pytest.approx(0.9), "a"), (0.5, "b"), (0.25, "c")]
    assert got.pairs(True) == [(7.5, "b"), (3.0, "d")]
    assert {i: (h.text, h.metadata_json) for i, h in got.payload_map().items()} == {
        "a": ("text a", '{"y": 1}'), "b": ("text b", "")}
    assert got.generation == 42


def test_unpacked_answers_read_the_same_way():
    wire = index_convert.shard_result_to_proto(ShardResult([Hit("a", 0.5, "t", "")], [], 1, {}))
    got = gateway_convert.shard_result_from_proto(wire)
    assert got.pairs(False) == [(0.5, "a")] and got.pairs(True) == [] and set(got.payload_map()) == {"a"}
