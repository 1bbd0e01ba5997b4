"""Write tokens: the text form round-trips, and junk is an InvalidArgument that says what is wrong."""

from __future__ import annotations

import pytest

from winnow.common.errors import InvalidArgument
from winnow.services.gateway.consistency import decode_token, encode_token, merge, required_seqs, satisfies


def test_round_trip_sorted_and_empty():
    tok = encode_token("L2", {1: 9, 0: 17})
    assert tok == "v1.L2.0:17,1:9"
    assert decode_token(tok) == ("L2", {0: 17, 1: 9})
    assert decode_token(encode_token("a-b_3", {})) == ("a-b_3", {})
    assert decode_token(encode_token("x", {5: 2**64 - 1}))[1] == {5: 2**64 - 1}


@pytest.mark.parametrize("junk", [
    "", "v1", "v2.L.0:1", "v1.L.0:1.extra", "v1..0:1", "v1.L.0", "v1.L.0:x", "v1.L.-1:3", "v1.L.0:1,0:2",
    "v1.L.0:1,", "v1.L.0:" + "9" * 20, "v1.l@yout.0:1", "v1.L." + ",".join(f"{i}:1" for i in range(2000)),
])
def test_junk_is_invalid_argument(junk):
    with pytest.raises(InvalidArgument):
        decode_token(junk)


def test_encode_refuses_bad_layouts_and_negatives():
    with pytest.raises(ValueError):
        encode_token("a.b", {0: 1})
    with pytest.raises(ValueError):
        encode_token("L", {0: -1})


def test_merge_and_satisfies():
    assert merge({0: 3, 1: 5}, {1: 4, 2: 1}) == {0: 3, 1: 5, 2: 1}
    assert satisfies({0: 3, 1: 5}, {0: 3})
    assert not satisfies({0: 3}, {0: 3, 1: 1})
    assert satisfies({}, {})


def test_required_seqs_of_a_search_token():
    assert required_seqs("", (), "L1", 2) == ({}, [])  # no token: nothing to wait for
    assert required_seqs("L1", ((0, 7), (1, 0)), "L1", 2) == ({0: 7}, [])  # sequence 0 asks for nothing
    required, unmet = required_seqs("L0", ((0, 7),), "L1", 2)  # a token of the layout before a reshard
    assert required == {} and "resharded" in unmet[0] and "'L0'" in unmet[0]
    with pytest.raises(InvalidArgument, match="partition 2"):
        required_seqs("L1", ((2, 1),), "L1", 2)
