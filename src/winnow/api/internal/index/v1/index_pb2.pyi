from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Document(_message.Message):
    __slots__ = ("id", "vector", "text", "metadata_json", "vector_f32")
    ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    VECTOR_F32_FIELD_NUMBER: _ClassVar[int]
    id: str
    vector: _containers.RepeatedScalarFieldContainer[float]
    text: str
    metadata_json: str
    vector_f32: bytes
    def __init__(self, id: _Optional[str] = ..., vector: _Optional[_Iterable[float]] = ..., text: _Optional[str] = ..., metadata_json: _Optional[str] = ..., vector_f32: _Optional[bytes] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("documents", "missing")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[Hit]
    missing: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, documents: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., missing: _Optional[_Iterable[str]] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("field", "equals")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    EQUALS_FIELD_NUMBER: _ClassVar[int]
    field: str
    equals: _struct_pb2.Value
    def __init__(self, field: _Optional[str] = ..., equals: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class SearchParams(_message.Message):
    __slots__ = ("nprobe", "ef_search")
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    nprobe: int
    ef_search: int
    def __init__(self, nprobe: _Optional[int] = ..., ef_search: _Optional[int] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("vector", "k", "query_text", "lexical_k", "filters", "params", "coarse_dim", "coarse_candidates", "include_payloads", "min_applied_seq", "vector_f32", "packed", "payload_top")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    QUERY_TEXT_FIELD_NUMBER: _ClassVar[int]
    LEXICAL_K_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    COARSE_DIM_FIELD_NUMBER: _ClassVar[int]
    COARSE_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    MIN_APPLIED_SEQ_FIELD_NUMBER: _ClassVar[int]
    VECTOR_F32_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_TOP_FIELD_NUMBER: _ClassVar[int]
    vector: _containers.RepeatedScalarFieldContainer[float]
    k: int
    query_text: str
    lexical_k: int
    filters: _containers.RepeatedCompositeFieldContainer[Filter]
    params: SearchParams
    coarse_dim: int
    coarse_candidates: int
    include_payloads: bool
    min_applied_seq: int
    vector_f32: bytes
    packed: bool
    payload_top: int
    def __init__(self, vector: _Optional[_Iterable[float]] = ..., k: _Optional[int] = ..., query_text: _Optional[str] = ..., lexical_k: _Optional[int] = ..., filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ..., params: _Optional[_Union[SearchParams, _Mapping]] = ..., coarse_dim: _Optional[int] = ..., coarse_candidates: _Optional[int] = ..., include_payloads: _Optional[bool] = ..., min_applied_seq: _Optional[int] = ..., vector_f32: _Optional[bytes] = ..., packed: _Optional[bool] = ..., payload_top: _Optional[int] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("id", "score", "text", "metadata_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    text: str
    metadata_json: str
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., text: _Optional[str] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("packed", "dense_ids", "dense_scores_f32", "lexical_ids", "lexical_scores_f32", "payloads", "dense", "lexical", "generation", "timings_ms", "applied_seq")
    class TimingsMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PACKED_FIELD_NUMBER: _ClassVar[int]
    DENSE_IDS_FIELD_NUMBER: _ClassVar[int]
    DENSE_SCORES_F32_FIELD_NUMBER: _ClassVar[int]
    LEXICAL_IDS_FIELD_NUMBER: _ClassVar[int]
    LEXICAL_SCORES_F32_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    DENSE_FIELD_NUMBER: _ClassVar[int]
    LEXICAL_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_MS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQ_FIELD_NUMBER: _ClassVar[int]
    packed: bool
    dense_ids: _containers.RepeatedScalarFieldContainer[str]
    dense_scores_f32: bytes
    lexical_ids: _containers.RepeatedScalarFieldContainer[str]
    lexical_scores_f32: bytes
    payloads: _containers.RepeatedCompositeFieldContainer[Hit]
    dense: _containers.RepeatedCompositeFieldContainer[Hit]
    lexical: _containers.RepeatedCompositeFieldContainer[Hit]
    generation: int
    timings_ms: _containers.ScalarMap[str, float]
    applied_seq: int
    def __init__(self, packed: _Optional[bool] = ..., dense_ids: _Optional[_Iterable[str]] = ..., dense_scores_f32: _Optional[bytes] = ..., lexical_ids: _Optional[_Iterable[str]] = ..., lexical_scores_f32: _Optional[bytes] = ..., payloads: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., dense: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., lexical: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., generation: _Optional[int] = ..., timings_ms: _Optional[_Mapping[str, float]] = ..., applied_seq: _Optional[int] = ...) -> None: ...

class RangeSearchRequest(_message.Message):
    __slots__ = ("vector", "threshold", "page_size", "filters", "coarse_dim", "include_payloads", "max_results", "params", "vector_f32")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    COARSE_DIM_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULTS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    VECTOR_F32_FIELD_NUMBER: _ClassVar[int]
    vector: _containers.RepeatedScalarFieldContainer[float]
    threshold: float
    page_size: int
    filters: _containers.RepeatedCompositeFieldContainer[Filter]
    coarse_dim: int
    include_payloads: bool
    max_results: int
    params: SearchParams
    vector_f32: bytes
    def __init__(self, vector: _Optional[_Iterable[float]] = ..., threshold: _Optional[float] = ..., page_size: _Optional[int] = ..., filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ..., coarse_dim: _Optional[int] = ..., include_payloads: _Optional[bool] = ..., max_results: _Optional[int] = ..., params: _Optional[_Union[SearchParams, _Mapping]] = ..., vector_f32: _Optional[bytes] = ...) -> None: ...

class RangeSearchPage(_message.Message):
    __slots__ = ("hits", "page", "last", "total", "generation", "timings_ms")
    class TimingsMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    HITS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_MS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    page: int
    last: bool
    total: int
    generation: int
    timings_ms: _containers.ScalarMap[str, float]
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., page: _Optional[int] = ..., last: _Optional[bool] = ..., total: _Optional[int] = ..., generation: _Optional[int] = ..., timings_ms: _Optional[_Mapping[str, float]] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("shard_id", "count", "generation", "dimension", "index_factory", "trained", "device", "applied_seq", "caught_up", "partition", "replica_id", "layout", "lag")
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    INDEX_FACTORY_FIELD_NUMBER: _ClassVar[int]
    TRAINED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQ_FIELD_NUMBER: _ClassVar[int]
    CAUGHT_UP_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    shard_id: str
    count: int
    generation: int
    dimension: int
    index_factory: str
    trained: bool
    device: str
    applied_seq: int
    caught_up: bool
    partition: int
    replica_id: str
    layout: str
    lag: int
    def __init__(self, shard_id: _Optional[str] = ..., count: _Optional[int] = ..., generation: _Optional[int] = ..., dimension: _Optional[int] = ..., index_factory: _Optional[str] = ..., trained: _Optional[bool] = ..., device: _Optional[str] = ..., applied_seq: _Optional[int] = ..., caught_up: _Optional[bool] = ..., partition: _Optional[int] = ..., replica_id: _Optional[str] = ..., layout: _Optional[str] = ..., lag: _Optional[int] = ...) -> None: ...

class TrainRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TrainResponse(_message.Message):
    __slots__ = ("trained", "generation")
    TRAINED_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    trained: bool
    generation: int
    def __init__(self, trained: _Optional[bool] = ..., generation: _Optional[int] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("generation", "count", "applied_seq")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQ_FIELD_NUMBER: _ClassVar[int]
    generation: int
    count: int
    applied_seq: int
    def __init__(self, generation: _Optional[int] = ..., count: _Optional[int] = ..., applied_seq: _Optional[int] = ...) -> None: ...
