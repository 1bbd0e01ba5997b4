from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODE_UNSPECIFIED: _ClassVar[Mode]
    MODE_PRECISION: _ClassVar[Mode]
    MODE_BULK: _ClassVar[Mode]

class Retrieval(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RETRIEVAL_UNSPECIFIED: _ClassVar[Retrieval]
    RETRIEVAL_HYBRID: _ClassVar[Retrieval]
    RETRIEVAL_DENSE: _ClassVar[Retrieval]
    RETRIEVAL_LEXICAL: _ClassVar[Retrieval]

class Fusion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FUSION_UNSPECIFIED: _ClassVar[Fusion]
    FUSION_CONVEX: _ClassVar[Fusion]
    FUSION_RRF: _ClassVar[Fusion]
MODE_UNSPECIFIED: Mode
MODE_PRECISION: Mode
MODE_BULK: Mode
RETRIEVAL_UNSPECIFIED: Retrieval
RETRIEVAL_HYBRID: Retrieval
RETRIEVAL_DENSE: Retrieval
RETRIEVAL_LEXICAL: Retrieval
FUSION_UNSPECIFIED: Fusion
FUSION_CONVEX: Fusion
FUSION_RRF: Fusion

class Filter(_message.Message):
    __slots__ = ("field", "equals")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    EQUALS_FIELD_NUMBER: _ClassVar[int]
    field: str
    equals: _struct_pb2.Value
    def __init__(self, field: _Optional[str] = ..., equals: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("query", "mode", "k", "candidate_window", "rerank", "retrieval", "rrf_k", "mrl_dim", "filters", "nprobe", "ef_search", "no_cache", "fusion", "rerank_depth", "write_token", "query_vector", "vector_model")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    RERANK_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    RRF_K_FIELD_NUMBER: _ClassVar[int]
    MRL_DIM_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    RERANK_DEPTH_FIELD_NUMBER: _ClassVar[int]
    WRITE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    QUERY_VECTOR_FIELD_NUMBER: _ClassVar[int]
    VECTOR_MODEL_FIELD_NUMBER: _ClassVar[int]
    query: str
    mode: Mode
    k: int
    candidate_window: int
    rerank: bool
    retrieval: Retrieval
    rrf_k: int
    mrl_dim: int
    filters: _containers.RepeatedCompositeFieldContainer[Filter]
    nprobe: int
    ef_search: int
    no_cache: bool
    fusion: Fusion
    rerank_depth: int
    write_token: str
    query_vector: _containers.RepeatedScalarFieldContainer[float]
    vector_model: str
    def __init__(self, query: _Optional[str] = ..., mode: _Optional[_Union[Mode, str]] = ..., k: _Optional[int] = ..., candidate_window: _Optional[int] = ..., rerank: _Optional[bool] = ..., retrieval: _Optional[_Union[Retrieval, str]] = ..., rrf_k: _Optional[int] = ..., mrl_dim: _Optional[int] = ..., filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ..., nprobe: _Optional[int] = ..., ef_search: _Optional[int] = ..., no_cache: _Optional[bool] = ..., fusion: _Optional[_Union[Fusion, str]] = ..., rerank_depth: _Optional[int] = ..., write_token: _Optional[str] = ..., query_vector: _Optional[_Iterable[float]] = ..., vector_model: _Optional[str] = ...) -> None: ...

class BulkSearchRequest(_message.Message):
    __slots__ = ("query", "mode", "retrieval", "mrl_dim", "filters", "threshold", "page_size", "max_results", "nprobe", "ef_search", "cursor", "write_token", "query_vector", "vector_model")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    MRL_DIM_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULTS_FIELD_NUMBER: _ClassVar[int]
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    WRITE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    QUERY_VECTOR_FIELD_NUMBER: _ClassVar[int]
    VECTOR_MODEL_FIELD_NUMBER: _ClassVar[int]
    query: str
    mode: Mode
    retrieval: Retrieval
    mrl_dim: int
    filters: _containers.RepeatedCompositeFieldContainer[Filter]
    threshold: float
    page_size: int
    max_results: int
    nprobe: int
    ef_search: int
    cursor: str
    write_token: str
    query_vector: _containers.RepeatedScalarFieldContainer[float]
    vector_model: str
    def __init__(self, query: _Optional[str] = ..., mode: _Optional[_Union[Mode, str]] = ..., retrieval: _Optional[_Union[Retrieval, str]] = ..., mrl_dim: _Optional[int] = ..., filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ..., threshold: _Optional[float] = ..., page_size: _Optional[int] = ..., max_results: _Optional[int] = ..., nprobe: _Optional[int] = ..., ef_search: _Optional[int] = ..., cursor: _Optional[str] = ..., write_token: _Optional[str] = ..., query_vector: _Optional[_Iterable[float]] = ..., vector_model: _Optional[str] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("id", "score", "text", "metadata_json", "first_stage_rank", "first_stage_score", "rerank_score", "dense_rank", "lexical_rank", "metadata")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    FIRST_STAGE_RANK_FIELD_NUMBER: _ClassVar[int]
    FIRST_STAGE_SCORE_FIELD_NUMBER: _ClassVar[int]
    RERANK_SCORE_FIELD_NUMBER: _ClassVar[int]
    DENSE_RANK_FIELD_NUMBER: _ClassVar[int]
    LEXICAL_RANK_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    text: str
    metadata_json: str
    first_stage_rank: int
    first_stage_score: float
    rerank_score: float
    dense_rank: int
    lexical_rank: int
    metadata: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., text: _Optional[str] = ..., metadata_json: _Optional[str] = ..., first_stage_rank: _Optional[int] = ..., first_stage_score: _Optional[float] = ..., rerank_score: _Optional[float] = ..., dense_rank: _Optional[int] = ..., lexical_rank: _Optional[int] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Coverage(_message.Message):
    __slots__ = ("shards_asked", "shards_answered", "failed_shards")
    SHARDS_ASKED_FIELD_NUMBER: _ClassVar[int]
    SHARDS_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    FAILED_SHARDS_FIELD_NUMBER: _ClassVar[int]
    shards_asked: int
    shards_answered: int
    failed_shards: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, shards_asked: _Optional[int] = ..., shards_answered: _Optional[int] = ..., failed_shards: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "coverage", "reranked", "rerank_skipped_reason", "cache_hit", "timings_ms", "request_id", "model", "reranker", "served_at", "consistency_unmet", "dense_skipped_reason")
    class TimingsMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    HITS_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    RERANKED_FIELD_NUMBER: _ClassVar[int]
    RERANK_SKIPPED_REASON_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RERANKER_FIELD_NUMBER: _ClassVar[int]
    SERVED_AT_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_UNMET_FIELD_NUMBER: _ClassVar[int]
    DENSE_SKIPPED_REASON_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    coverage: Coverage
    reranked: bool
    rerank_skipped_reason: str
    cache_hit: bool
    timings_ms: _containers.ScalarMap[str, float]
    request_id: str
    model: str
    reranker: str
    served_at: str
    consistency_unmet: str
    dense_skipped_reason: str
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., coverage: _Optional[_Union[Coverage, _Mapping]] = ..., reranked: _Optional[bool] = ..., rerank_skipped_reason: _Optional[str] = ..., cache_hit: _Optional[bool] = ..., timings_ms: _Optional[_Mapping[str, float]] = ..., request_id: _Optional[str] = ..., model: _Optional[str] = ..., reranker: _Optional[str] = ..., served_at: _Optional[str] = ..., consistency_unmet: _Optional[str] = ..., dense_skipped_reason: _Optional[str] = ...) -> None: ...

class BulkSearchPage(_message.Message):
    __slots__ = ("hits", "page", "last", "total", "coverage", "timings_ms", "request_id", "cursor", "served_at", "consistency_unmet")
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
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    SERVED_AT_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_UNMET_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    page: int
    last: bool
    total: int
    coverage: Coverage
    timings_ms: _containers.ScalarMap[str, float]
    request_id: str
    cursor: str
    served_at: str
    consistency_unmet: str
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., page: _Optional[int] = ..., last: _Optional[bool] = ..., total: _Optional[int] = ..., coverage: _Optional[_Union[Coverage, _Mapping]] = ..., timings_ms: _Optional[_Mapping[str, float]] = ..., request_id: _Optional[str] = ..., cursor: _Optional[str] = ..., served_at: _Optional[str] = ..., consistency_unmet: _Optional[str] = ...) -> None: ...

class Document(_message.Message):
    __slots__ = ("id", "text", "metadata_json", "metadata", "vector")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    metadata_json: str
    metadata: _struct_pb2.Struct
    vector: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., metadata_json: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., vector: _Optional[_Iterable[float]] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("documents", "vector_model")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    VECTOR_MODEL_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[Document]
    vector_model: str
    def __init__(self, documents: _Optional[_Iterable[_Union[Document, _Mapping]]] = ..., vector_model: _Optional[str] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("upserted", "timings_ms", "request_id", "write_token")
    class TimingsMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WRITE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    timings_ms: _containers.ScalarMap[str, float]
    request_id: str
    write_token: str
    def __init__(self, upserted: _Optional[int] = ..., timings_ms: _Optional[_Mapping[str, float]] = ..., request_id: _Optional[str] = ..., write_token: _Optional[str] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted", "timings_ms", "request_id", "write_token")
    class TimingsMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    DELETED_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WRITE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    timings_ms: _containers.ScalarMap[str, float]
    request_id: str
    write_token: str
    def __init__(self, deleted: _Optional[int] = ..., timings_ms: _Optional[_Mapping[str, float]] = ..., request_id: _Optional[str] = ..., write_token: _Optional[str] = ...) -> None: ...

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

class ReplicaInfo(_message.Message):
    __slots__ = ("address", "healthy", "count", "applied_seq", "error")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQ_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    address: str
    healthy: bool
    count: int
    applied_seq: int
    error: str
    def __init__(self, address: _Optional[str] = ..., healthy: _Optional[bool] = ..., count: _Optional[int] = ..., applied_seq: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class ShardInfo(_message.Message):
    __slots__ = ("address", "healthy", "count", "generation", "index_factory", "error", "replicas")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    INDEX_FACTORY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    address: str
    healthy: bool
    count: int
    generation: int
    index_factory: str
    error: str
    replicas: _containers.RepeatedCompositeFieldContainer[ReplicaInfo]
    def __init__(self, address: _Optional[str] = ..., healthy: _Optional[bool] = ..., count: _Optional[int] = ..., generation: _Optional[int] = ..., index_factory: _Optional[str] = ..., error: _Optional[str] = ..., replicas: _Optional[_Iterable[_Union[ReplicaInfo, _Mapping]]] = ...) -> None: ...

class ClusterInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerLimits(_message.Message):
    __slots__ = ("max_write_docs", "max_message_bytes", "max_doc_bytes", "max_k", "max_window", "max_page_size", "max_bulk_results", "max_query_chars")
    MAX_WRITE_DOCS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_DOC_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_K_FIELD_NUMBER: _ClassVar[int]
    MAX_WINDOW_FIELD_NUMBER: _ClassVar[int]
    MAX_PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_BULK_RESULTS_FIELD_NUMBER: _ClassVar[int]
    MAX_QUERY_CHARS_FIELD_NUMBER: _ClassVar[int]
    max_write_docs: int
    max_message_bytes: int
    max_doc_bytes: int
    max_k: int
    max_window: int
    max_page_size: int
    max_bulk_results: int
    max_query_chars: int
    def __init__(self, max_write_docs: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_doc_bytes: _Optional[int] = ..., max_k: _Optional[int] = ..., max_window: _Optional[int] = ..., max_page_size: _Optional[int] = ..., max_bulk_results: _Optional[int] = ..., max_query_chars: _Optional[int] = ...) -> None: ...

class ClusterInfoResponse(_message.Message):
    __slots__ = ("shards", "embedder_model", "embedder_device", "reranker_model", "reranker_scorer", "reranker_device", "documents", "cache", "limits", "version", "api_version", "layout", "vector_model", "dimension")
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_MODEL_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_DEVICE_FIELD_NUMBER: _ClassVar[int]
    RERANKER_MODEL_FIELD_NUMBER: _ClassVar[int]
    RERANKER_SCORER_FIELD_NUMBER: _ClassVar[int]
    RERANKER_DEVICE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_MODEL_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    shards: _containers.RepeatedCompositeFieldContainer[ShardInfo]
    embedder_model: str
    embedder_device: str
    reranker_model: str
    reranker_scorer: str
    reranker_device: str
    documents: int
    cache: str
    limits: ServerLimits
    version: str
    api_version: str
    layout: str
    vector_model: str
    dimension: int
    def __init__(self, shards: _Optional[_Iterable[_Union[ShardInfo, _Mapping]]] = ..., embedder_model: _Optional[str] = ..., embedder_device: _Optional[str] = ..., reranker_model: _Optional[str] = ..., reranker_scorer: _Optional[str] = ..., reranker_device: _Optional[str] = ..., documents: _Optional[int] = ..., cache: _Optional[str] = ..., limits: _Optional[_Union[ServerLimits, _Mapping]] = ..., version: _Optional[str] = ..., api_version: _Optional[str] = ..., layout: _Optional[str] = ..., vector_model: _Optional[str] = ..., dimension: _Optional[int] = ...) -> None: ...

class Judgment(_message.Message):
    __slots__ = ("doc_id", "relevance", "kind")
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    RELEVANCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    doc_id: str
    relevance: int
    kind: str
    def __init__(self, doc_id: _Optional[str] = ..., relevance: _Optional[int] = ..., kind: _Optional[str] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("query_id", "query", "judgments")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    JUDGMENTS_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    query: str
    judgments: _containers.RepeatedCompositeFieldContainer[Judgment]
    def __init__(self, query_id: _Optional[str] = ..., query: _Optional[str] = ..., judgments: _Optional[_Iterable[_Union[Judgment, _Mapping]]] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("recorded", "request_id")
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    recorded: int
    request_id: str
    def __init__(self, recorded: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class ExportFeedbackRequest(_message.Message):
    __slots__ = ("after_seq",)
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    after_seq: int
    def __init__(self, after_seq: _Optional[int] = ...) -> None: ...

class FeedbackRecord(_message.Message):
    __slots__ = ("query_id", "query", "doc_id", "relevance", "kind", "recorded_at_ms", "seq")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    RELEVANCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    query: str
    doc_id: str
    relevance: int
    kind: str
    recorded_at_ms: int
    seq: int
    def __init__(self, query_id: _Optional[str] = ..., query: _Optional[str] = ..., doc_id: _Optional[str] = ..., relevance: _Optional[int] = ..., kind: _Optional[str] = ..., recorded_at_ms: _Optional[int] = ..., seq: _Optional[int] = ...) -> None: ...
