"""Proto <-> gateway domain for the feedback RPCs (Gateway.Feedback, Gateway.ExportFeedback), with the request's
validation: a bad batch is one InvalidArgument naming the field (`judgments[2].doc_id`) and records nothing.

Apart from `convert_search` (Search, BulkSearch) and `convert` (writes, cluster info and the internal APIs) because
it is a separate part of the contract; the same conventions hold: `x_from_proto` reads a message, `x_to_proto`
builds one, no grpc here.
"""

from __future__ import annotations

from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.common import limits
from winnow.common.errors import InvalidArgument
from winnow.log.feedback import CLICK, JUDGMENT, KINDS, FeedbackRecord
from winnow.services.gateway.feedback import MAX_RELEVANCE, FeedbackBatch, Judgment
from winnow.services.gateway.settings import GatewaySettings


def _id(value: str, field: str, what: str, s: GatewaySettings) -> str:
    if not value.strip():
        raise InvalidArgument(f"feedback: {field} is empty: {what}", field=field, reason="EMPTY_ID")
    try:
        return limits.doc_id(value, f"feedback: {field}", s.limits())
    except InvalidArgument as exc:
        raise InvalidArgument(str(exc), field=field, reason="ID_TOO_LONG",
                              info={"limit": s.max_id_bytes}) from None


def _judgment(i: int, j: pb.Judgment, s: GatewaySettings) -> Judgment:
    doc_id = _id(j.doc_id, f"judgments[{i}].doc_id", "every judgment names a document", s)
    kind = j.kind or JUDGMENT
    if kind not in KINDS:
        raise InvalidArgument(f"feedback: judgments[{i}].kind is {j.kind!r}; use {' or '.join(map(repr, KINDS))}",
                              field=f"judgments[{i}].kind", reason="BAD_FEEDBACK_KIND")
    field = f"judgments[{i}].relevance"
    if not j.HasField("relevance"):
        if kind == JUDGMENT:
            raise InvalidArgument(f"feedback: {field} is required for a judgment (a grade: 0 = not relevant, "
                                  "1 or more = relevant); a click without one counts 1", field=field,
                                  reason="BAD_RELEVANCE")
        return Judgment(doc_id, 1, CLICK)
    if not 0 <= j.relevance <= MAX_RELEVANCE:
        raise InvalidArgument(f"feedback: {field} is {j.relevance}; use a grade from 0 (not relevant) to "
                              f"{MAX_RELEVANCE}", field=field, reason="BAD_RELEVANCE", info={"limit": MAX_RELEVANCE})
    return Judgment(doc_id, j.relevance, kind)


def feedback_from_proto(req: pb.FeedbackRequest, s: GatewaySettings) -> FeedbackBatch:
    """Validate a whole Feedback request (all or nothing); raises InvalidArgument naming the field."""
    query_id = _id(req.query_id, "query_id", "send the search's request_id or your own id for the query", s)
    query = req.query.strip()
    if not query:
        raise InvalidArgument("feedback: query is empty: send the query text the judgments are about", field="query",
                              reason="QUERY_EMPTY")
    if len(query) > s.max_query_chars:
        raise InvalidArgument(f"feedback: query is {len(query)} characters; the limit is {s.max_query_chars}",
                              field="query", reason="QUERY_TOO_LONG", info={"limit": s.max_query_chars})
    if not req.judgments:
        raise InvalidArgument("feedback: judgments is empty: send at least one", field="judgments",
                              reason="EMPTY_REQUEST")
    if len(req.judgments) > s.max_write_docs:
        raise InvalidArgument(f"feedback: {len(req.judgments)} judgments; the limit is {s.max_write_docs} per "
                              "request", field="judgments", reason="TOO_MANY_ITEMS", info={"limit": s.max_write_docs})
    out: list[Judgment] = []
    seen: set[tuple[str, str]] = set()
    for i, j in enumerate(req.judgments):
        judgment = _judgment(i, j, s)
        key = (judgment.doc_id, judgment.kind)
        if key in seen:
            raise InvalidArgument(f"feedback: document {judgment.doc_id!r} has two {judgment.kind}s in one request",
                                  field=f"judgments[{i}].doc_id", reason="DUPLICATE_ID")
        seen.add(key)
        out.append(judgment)
    return FeedbackBatch(query_id, query, tuple(out))


def feedback_result_to_proto(recorded: int, request_id: str) -> pb.FeedbackResponse:
    return pb.FeedbackResponse(recorded=recorded, request_id=request_id)


def feedback_record_to_proto(r: FeedbackRecord) -> pb.FeedbackRecord:
    return pb.FeedbackRecord(query_id=r.query_id, query=r.query, doc_id=r.doc_id, relevance=r.relevance, kind=r.kind,
                             recorded_at_ms=r.recorded_at_ms, seq=r.seq)
