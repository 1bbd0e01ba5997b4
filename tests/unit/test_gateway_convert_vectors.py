"""Caller vectors through the gateway's request validation (pure: no services)."""

import math

import numpy as np
import pytest

from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.common.errors import InvalidArgument
from winnow.services.gateway import convert, convert_search
from winnow.services.gateway.model import Mode
from winnow.services.gateway.settings import GatewaySettings
from winnow.services.gateway.vectors import VectorSpace, space_of

S = GatewaySettings()
SPACE = VectorSpace("all-MiniLM-L6-v2@abc", 4)
FOREIGN = space_of("e5-small", "all-MiniLM-L6-v2@abc", 4)  # a collection of another model's vectors


def opts(space=SPACE, **kw):
    return convert_search.search_options_from_proto(pb.SearchRequest(**kw), S, space)


def test_query_vector_is_normalised_and_keyed_by_hash():
    o = opts(query="aspirin", query_vector=[0, 3, 0, 4])
    np.testing.assert_allclose(o.vector, [0, 0.6, 0, 0.8], rtol=1e-6)
    other = opts(query="aspirin", query_vector=[0, 4, 0, 3])
    plain = opts(query="aspirin")
    keys = {str(x.cache_material()) for x in (o, other, plain)}
    assert len(keys) == 3 and plain.vector is None
    assert o.cache_material()["vector"] == opts(query="aspirin", query_vector=[0, 6, 0, 8]).cache_material()["vector"]


def test_dense_vector_alone_needs_no_text_and_does_not_rerank():
    o = opts(query_vector=[1, 0, 0, 0], retrieval=pb.RETRIEVAL_DENSE)
    assert o.query == "" and o.rerank is False
    assert opts(query="x", query_vector=[1, 0, 0, 0]).rerank is True  # text present: the default stays on


@pytest.mark.parametrize("kw,needle", [
    (dict(query="x", query_vector=[1, 2, 3]), "query_vector has 3 components"),
    (dict(query="x", query_vector=[1, math.nan, 0, 0]), "query_vector[1] is nan"),
    (dict(query="x", query_vector=[1, math.inf, 0, 0]), "query_vector[1] is inf"),
    (dict(query_vector=[1, 0, 0, 0]), "hybrid retrieval needs the text for BM25"),
    (dict(query_vector=[1, 0, 0, 0], retrieval=pb.RETRIEVAL_DENSE, rerank=True), "rerank needs the query text"),
    (dict(query="x", query_vector=[1, 0, 0, 0], retrieval=pb.RETRIEVAL_LEXICAL), "RETRIEVAL_LEXICAL"),
    (dict(query="x", query_vector=[1, 0, 0, 0], vector_model="e5-small"), "vector_model='e5-small'"),
    (dict(query="x", vector_model="all-MiniLM-L6-v2"), "query_vector is empty"),
    (dict(), "query is empty"),
])
def test_bad_query_vectors_are_invalid_argument_naming_the_field(kw, needle):
    with pytest.raises(InvalidArgument) as e:
        opts(**kw)
    assert needle in str(e.value)


def test_model_name_without_hash_is_accepted():
    assert opts(query="x", query_vector=[1, 0, 0, 0], vector_model="all-MiniLM-L6-v2").vector is not None


def test_foreign_collection_refuses_text_only_dense_and_accepts_its_vectors():
    assert not FOREIGN.embeddable and FOREIGN.model == "e5-small"
    with pytest.raises(InvalidArgument, match="query_vector is required"):
        opts(FOREIGN, query="x")
    assert opts(FOREIGN, query="x", retrieval=pb.RETRIEVAL_LEXICAL).vector is None
    assert opts(FOREIGN, query="x", query_vector=[1, 0, 0, 0], vector_model="e5-small").vector is not None
    with pytest.raises(InvalidArgument, match="this collection holds vectors of 'e5-small'"):
        opts(FOREIGN, query="x", query_vector=[1, 0, 0, 0], vector_model="all-MiniLM-L6-v2")


def _upsert(space=SPACE, vector_model="", **docs):
    return convert.write_documents_from_proto(pb.UpsertRequest(
        documents=[pb.Document(id=i, text="t", vector=v) for i, v in docs.items()], vector_model=vector_model),
        S, space)


def test_upsert_vectors_are_checked_per_document_and_mixed_batches_work():
    out = _upsert(a=[0, 0, 2, 0], b=[])
    np.testing.assert_allclose(out[0].vector, [0, 0, 1, 0])
    assert out[1].vector is None  # embedded by the gateway
    for docs, needle in [
        (dict(a=[1, 0, 0, 0], b=[1, 0, 0]), "documents[1].vector has 3 components"),
        (dict(a=[1, 0, 0, 0], b=[1, math.nan, 0, 0]), "documents[1].vector[1] is nan"),
        (dict(a=[0, 0, 0, 0]), "documents[0].vector is the zero vector"),
    ]:
        with pytest.raises(InvalidArgument, match=needle.replace("[", r"\[").replace("]", r"\]")):
            _upsert(**docs)
    with pytest.raises(InvalidArgument, match="vector_model='e5-small'"):
        _upsert(vector_model="e5-small", a=[1, 0, 0, 0])
    with pytest.raises(InvalidArgument, match="no document carries a vector"):
        _upsert(vector_model="all-MiniLM-L6-v2", a=[])
    with pytest.raises(InvalidArgument, match=r"documents\[0\].vector is required"):
        _upsert(FOREIGN, a=[])
