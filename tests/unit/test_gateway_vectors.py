import math

import numpy as np
import pytest

from winnow.common.errors import InvalidArgument
from winnow.services.gateway.vectors import VectorSpace, check_model, digest, unit_vector

SPACE = VectorSpace("all-MiniLM-L6-v2", 4)


def test_unit_vector_normalises():
    v = unit_vector([3.0, 0.0, 4.0, 0.0], SPACE, "query_vector")
    assert v.dtype == np.float32
    np.testing.assert_allclose(v, [0.6, 0.0, 0.8, 0.0], rtol=1e-6)


@pytest.mark.parametrize("values,needle", [
    ([1.0, 2.0, 3.0], "query_vector has 3 components; this collection's vectors (all-MiniLM-L6-v2) have 4"),
    ([1.0, math.nan, 0.0, 0.0], "query_vector[1] is nan"),
    ([1.0, 0.0, math.inf, 0.0], "query_vector[2] is inf"),
    ([0.0, 0.0, 0.0, 0.0], "zero vector"),
    ([3e38, 3e38, 3e38, 3e38], None),  # huge but finite: normalised in float64, fine
])
def test_unit_vector_refuses_bad_input(values, needle):
    if needle is None:
        assert np.isfinite(unit_vector(values, SPACE, "query_vector")).all()
        return
    with pytest.raises(InvalidArgument) as e:
        unit_vector(values, SPACE, "query_vector")
    assert needle in str(e.value)


def test_unknown_space_is_refused():
    with pytest.raises(InvalidArgument, match="not known yet"):
        unit_vector([1.0], VectorSpace("", 0), "documents[0].vector")


def test_check_model():
    check_model("", SPACE, "vector_model")
    check_model("all-MiniLM-L6-v2", SPACE, "vector_model")
    with pytest.raises(InvalidArgument, match="vector_model='e5-small'.*all-MiniLM-L6-v2"):
        check_model("e5-small", SPACE, "vector_model")


def test_digest_is_stable_and_distinguishes():
    a = unit_vector([1, 2, 3, 4], SPACE, "v")
    b = unit_vector([1, 2, 3, 4.001], SPACE, "v")
    assert digest(a) == digest(a.copy()) and digest(a) != digest(b) and digest(None) == ""
