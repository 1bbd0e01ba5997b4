import json

import pytest
from google.protobuf import struct_pb2

from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.common.errors import InvalidArgument
from winnow.services.gateway import convert, convert_search
from winnow.services.gateway.model import Candidate, Mode, Retrieval
from winnow.services.gateway.settings import GatewaySettings

S = GatewaySettings(max_k=100, max_window=200, max_write_docs=3, payload_max_bytes=100)


def opts(**kw):
    return convert_search.search_options_from_proto(pb.SearchRequest(**kw), S)


def bulk_opts(**kw):
    return convert_search.bulk_options_from_proto(pb.BulkSearchRequest(**kw), S)


def test_defaults_filled_in():
    o = opts(query="  aspirin  ")
    assert (o.query, o.k, o.window, o.rerank, o.retrieval, o.rrf_k) == ("aspirin", 64, 80, True, Retrieval.HYBRID, 60)
    assert opts(query="x", rerank=False).rerank is False
    assert opts(query="x", k=90).window == 90  # default window grows to k
    assert opts(query="x").rerank_depth == 0 and opts(query="x", rerank_depth=30).rerank_depth == 30


@pytest.mark.parametrize("kw, fragment", [
    ({"query": ""}, "query is empty"),
    ({"query": "   "}, "query is empty"),
    ({"query": "x", "k": 101}, "above the limit"),
    ({"query": "x", "k": 10, "candidate_window": 5}, "smaller than k"),
    ({"query": "x", "candidate_window": 500}, "candidate_window=500"),
    ({"query": "x", "candidate_window": 20, "k": 10, "rerank_depth": 30}, "rerank_depth=30 is above"),
    ({"query": "x", "mode": 7}, "unknown mode"),
    ({"query": "x", "retrieval": 9}, "unknown retrieval"),
    ({"query": "x", "retrieval": pb.RETRIEVAL_LEXICAL, "mrl_dim": 64}, "mrl_dim"),
    ({"query": "x", "filters": [pb.Filter(field="tags", equals=struct_pb2.Value(
        list_value=struct_pb2.ListValue()))]}, "string, number or bool"),
    ({"query": "x", "filters": [pb.Filter(field="", equals=struct_pb2.Value(string_value="a"))]}, "field is empty"),
])
def test_bad_search_requests(kw, fragment):
    with pytest.raises(InvalidArgument) as err:
        opts(**kw)
    assert fragment in str(err.value)


@pytest.mark.parametrize("kw, fragment, field, reason", [
    ({"query": "x", "threshold": 1.5}, "outside [-1, 1]", "threshold", "THRESHOLD_OUT_OF_RANGE"),
    ({"query": "x", "mode": pb.MODE_PRECISION}, "call Gateway.Search", "mode", "WRONG_RPC_FOR_MODE"),
    ({"query": "x", "retrieval": pb.RETRIEVAL_LEXICAL}, "dense", "retrieval", "BULK_IS_DENSE"),
    ({"query": "x", "page_size": 20_000}, "page_size=20000", "page_size", "PAGE_SIZE_TOO_LARGE"),
])
def test_bad_bulk_requests_name_field_and_reason(kw, fragment, field, reason):
    with pytest.raises(InvalidArgument) as err:
        bulk_opts(**kw)
    assert fragment in str(err.value) and err.value.field == field and err.value.reason == reason


def test_bulk_defaults_and_search_errors_carry_field_and_reason():
    o = bulk_opts(query=" babies ", threshold=0.4)
    assert (o.mode, o.query, o.page_size, o.max_results, o.rerank) == (Mode.BULK, "babies", 256, 100_000, False)
    with pytest.raises(InvalidArgument) as err:
        opts(query="x", k=101)
    assert (err.value.field, err.value.reason, err.value.info) == ("k", "K_TOO_LARGE", {"limit": "100"})
    with pytest.raises(InvalidArgument) as err:
        opts(query="x", mode=pb.MODE_BULK)
    assert "BulkSearch" in str(err.value) and err.value.field == "mode"


def test_metadata_struct_in_and_out():
    st = struct_pb2.Struct()
    st.update({"year": 2020, "tag": "a"})
    [doc] = convert.write_documents_from_proto(pb.UpsertRequest(documents=[pb.Document(id="a", text="t", metadata=st)]), S)
    assert json.loads(doc.metadata_json) == {"year": 2020, "tag": "a"}
    [old] = convert.write_documents_from_proto(pb.UpsertRequest(documents=[pb.Document(id="a", text="t",
                                                                            metadata_json='{"n": 1}')]), S)
    assert old.metadata_json == '{"n": 1}'  # the deprecated field is still read
    with pytest.raises(InvalidArgument, match="both"):
        convert.write_documents_from_proto(pb.UpsertRequest(documents=[pb.Document(id="a", text="t", metadata=st,
                                                                        metadata_json="{}")]), S)
    h = convert_search.hit_to_proto(Candidate(id="a", metadata_json='{"year": 2020}'))
    assert h.metadata["year"] == 2020 and json.loads(h.metadata_json) == {"year": 2020}


def test_too_many_items_says_the_limit():
    with pytest.raises(InvalidArgument) as err:
        convert.write_documents_from_proto(pb.UpsertRequest(documents=[pb.Document(id=str(i), text="t") for i in range(4)]), S)
    assert (err.value.reason, err.value.info, err.value.field) == ("TOO_MANY_ITEMS", {"limit": "3"}, "documents")


def test_filters_keep_types():
    o = opts(query="x", filters=[pb.Filter(field="year", equals=struct_pb2.Value(number_value=2020)),
                                 pb.Filter(field="ok", equals=struct_pb2.Value(bool_value=True))])
    assert o.filters == (("year", 2020.0), ("ok", True))


@pytest.mark.parametrize("docs, fragment", [
    ([], "empty"),
    ([pb.Document(id="", text="a")], ".id is empty"),
    ([pb.Document(id="a", text=" ")], ".text is empty"),
    ([pb.Document(id="a", text="t"), pb.Document(id="a", text="u")], "twice"),
    ([pb.Document(id="a", text="x" * 101)], "bytes"),
    ([pb.Document(id="a", text="t", metadata_json="{bad")], "not valid JSON"),
    ([pb.Document(id="a", text="t", metadata_json="[1]")], "JSON object"),
    ([pb.Document(id=str(i), text="t") for i in range(4)], "limit is 3"),
])
def test_bad_writes(docs, fragment):
    with pytest.raises(InvalidArgument) as err:
        convert.write_documents_from_proto(pb.UpsertRequest(documents=docs), S)
    assert fragment in str(err.value)


def test_cache_material_ignores_no_cache_and_orders_filters():
    a = opts(query="x", no_cache=True, filters=[pb.Filter(field="b", equals=struct_pb2.Value(string_value="1")),
                                                pb.Filter(field="a", equals=struct_pb2.Value(string_value="2"))])
    b = opts(query="x", filters=[pb.Filter(field="a", equals=struct_pb2.Value(string_value="2")),
                                 pb.Filter(field="b", equals=struct_pb2.Value(string_value="1"))])
    assert a.cache_material() == b.cache_material()


def test_cached_wire_form_is_restamped_for_each_request():
    from winnow.services.gateway.model import Candidate, Coverage, SearchResult

    fresh = SearchResult([Candidate(id="a", text="t", first_stage_rank=1, rerank_score=2.5)], Coverage(2, 2), True,
                         timings_ms={"rerank": 9.0}, model="m")
    payload = convert_search.search_result_to_bytes(fresh)
    hit = SearchResult([], Coverage(), False, cache_hit=True, timings_ms={"cache": 0.2, "total": 0.3}, payload=payload)
    resp = convert_search.search_result_to_proto(hit, "rid-2")
    assert resp.cache_hit and resp.request_id == "rid-2" and dict(resp.timings_ms) == {"cache": 0.2, "total": 0.3}
    assert [(h.id, h.rerank_score, h.first_stage_rank) for h in resp.hits] == [("a", 2.5, 1)]
    assert resp.reranked and resp.coverage.shards_answered == 2 and resp.model == "m"
