"""Winnow's Python client: `WinnowClient` (blocking) and `AsyncWinnowClient` (asyncio), with the same methods.

    from winnow.client import WinnowClient

    with WinnowClient("127.0.0.1:50050") as w:              # or WINNOW_TARGET / WINNOW_TOKEN / WINNOW_TLS_*
        w.upsert([{"id": "a1", "text": "Aspirin lowers fever in adults.", "metadata": {"year": 2020}}])
        r = w.search("does aspirin reduce fever?", k=10)
        for hit in r.hits:
            print(hit.id, hit.score, hit.first_stage_rank, hit.rerank_score)

Results are dataclasses (`SearchResult`, `Hit`, `BulkPage`, `WriteResult`, `ClusterInfo`, `FeedbackRecord`, ...);
`feedback` records users' judgments and clicks, `export_feedback` reads them back. Failures raise a
`WinnowError` subclass carrying the gRPC code and the server's structured details.
"""

from winnow.client.aio import AsyncWinnowClient
from winnow.client.errors import (
    CancelledError, DeadlineExceededError, FailedPreconditionError, InternalError, InvalidArgumentError,
    NotFoundError, PermissionDeniedError, ResourceExhaustedError, UnauthenticatedError, UnavailableError,
    WinnowError,
)
from winnow.client.feedback import FeedbackRecord, FeedbackResult, Judgment, training_pairs
from winnow.client.requests import bulk_request, search_request
from winnow.client.retry import NO_RETRY, RetryPolicy
from winnow.client.settings import DEFAULT_TARGET, ClientSettings
from winnow.client.sync import WinnowClient
from winnow.client.types import (
    BulkPage, ClusterInfo, Coverage, Document, GetResult, Hit, Limits, SearchResult, ShardInfo, StageTimings,
    WriteResult,
)

__all__ = [
    "AsyncWinnowClient", "BulkPage", "CancelledError", "ClientSettings", "ClusterInfo", "Coverage", "DEFAULT_TARGET",
    "DeadlineExceededError", "Document", "FailedPreconditionError", "FeedbackRecord", "FeedbackResult", "GetResult",
    "Hit", "InternalError", "InvalidArgumentError", "Judgment", "Limits", "NO_RETRY", "NotFoundError", "PermissionDeniedError", "ResourceExhaustedError",
    "RetryPolicy", "SearchResult", "ShardInfo", "StageTimings", "UnauthenticatedError", "UnavailableError",
    "WinnowClient", "WinnowError", "WriteResult", "bulk_request", "search_request", "training_pairs",
]
