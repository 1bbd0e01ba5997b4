"""Feedback in the client: typed judgments and records, request building (checked first, split to the limits),
and `training_pairs`, which turns exported records into the judgments file `winnow train reranker --judgments`
reads (JSON lines `{"query", "query_id", "doc_id", "relevance"}`).

How clicks and explicit judgments combine, per (query_id, doc_id): the latest explicit judgment wins, whatever
its grade (a judged "not relevant" overrides any clicks); a pair with clicks only takes its latest click's grade
(1 unless the click carried one). Each query's text is its latest record's, on every line of that query.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc

from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.client.errors import InvalidArgumentError
from winnow.client.types import Limits

JUDGMENT = "judgment"
CLICK = "click"
KINDS = (JUDGMENT, CLICK)
#: The gateway's highest accepted grade (docs/api.md).
MAX_RELEVANCE = 100


@dataclass(frozen=True)
class Judgment:
    """What a user said about one result: a graded judgment (`relevance` 0 = not relevant, > 0 relevant) or a
    click (`kind="click"`, relevance 1 unless given)."""

    doc_id: str
    relevance: int | None = None
    kind: str = JUDGMENT

    @classmethod
    def click(cls, doc_id: str, relevance: int | None = None) -> "Judgment":
        return cls(doc_id, relevance, CLICK)


@dataclass(frozen=True)
class FeedbackResult:
    """A recorded Feedback call, possibly sent as several requests (`requests`) to fit the server's limits."""

    recorded: int
    requests: int
    request_ids: tuple[str, ...]
    raw: tuple[Any, ...] = field(repr=False, compare=False, default=())


@dataclass(frozen=True)
class FeedbackRecord:
    """One exported record: the latest judgment (or click) of its query, document and kind."""

    query_id: str
    query: str
    doc_id: str
    relevance: int
    kind: str
    recorded_at_ms: int  # unix ms, the gateway's clock
    seq: int             # position in the feedback log; `export_feedback(after_seq=...)` resumes after it
    raw: pb.FeedbackRecord = field(repr=False, compare=False, default_factory=pb.FeedbackRecord)

    @classmethod
    def from_proto(cls, r: pb.FeedbackRecord) -> "FeedbackRecord":
        return cls(r.query_id, r.query, r.doc_id, r.relevance, r.kind, r.recorded_at_ms, r.seq, raw=r)

    def to_json(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "query": self.query, "doc_id": self.doc_id, "relevance": self.relevance,
                "kind": self.kind, "recorded_at_ms": self.recorded_at_ms, "seq": self.seq}


def _invalid(message: str, field_: str) -> InvalidArgumentError:
    return InvalidArgumentError(grpc.StatusCode.INVALID_ARGUMENT, message, reason="CLIENT_VALIDATION",
                                field_violations=((field_, message),))


def _as_judgment(i: int, item: Any) -> Judgment:
    if isinstance(item, Judgment):
        return item
    if isinstance(item, Mapping):
        return Judgment(item.get("doc_id", ""), item.get("relevance"), item.get("kind") or JUDGMENT)
    raise _invalid(f"judgments[{i}] must be a Judgment or a dict with doc_id, relevance and kind; got "
                   f"{type(item).__name__}", f"judgments[{i}]")


def judgments(query_id: str, query: str, items: Iterable[Any]) -> list[pb.Judgment]:
    """The judgments as messages, checked first (so a split batch never records half of a bad one)."""
    if not str(query_id).strip():
        raise _invalid("query_id is empty: pass the search's request_id or your own id", "query_id")
    if not isinstance(query, str) or not query.strip():
        raise _invalid("query is empty: pass the query text the judgments are about", "query")
    out: list[pb.Judgment] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(items):
        j = _as_judgment(i, item)
        if not str(j.doc_id).strip():
            raise _invalid(f"judgments[{i}] has no doc_id", f"judgments[{i}].doc_id")
        if j.kind not in KINDS:
            raise _invalid(f"judgments[{i}].kind must be 'judgment' or 'click'; got {j.kind!r}", f"judgments[{i}].kind")
        if j.relevance is None and j.kind == JUDGMENT:
            raise _invalid(f"judgments[{i}] needs a relevance (0 = not relevant, > 0 relevant)",
                           f"judgments[{i}].relevance")
        if j.relevance is not None and (isinstance(j.relevance, bool) or not isinstance(j.relevance, int)
                                        or not 0 <= j.relevance <= MAX_RELEVANCE):
            raise _invalid(f"judgments[{i}].relevance must be an integer from 0 to {MAX_RELEVANCE}; got "
                           f"{j.relevance!r}", f"judgments[{i}].relevance")
        if (str(j.doc_id), j.kind) in seen:
            raise _invalid(f"document {j.doc_id!r} has two {j.kind}s in one call", f"judgments[{i}].doc_id")
        seen.add((str(j.doc_id), j.kind))
        msg = pb.Judgment(doc_id=str(j.doc_id), kind=j.kind)
        if j.relevance is not None:
            msg.relevance = j.relevance
        out.append(msg)
    if not out:
        raise _invalid("no judgments: pass at least one", "judgments")
    return out


def feedback_requests(query_id: str, query: str, items: list[pb.Judgment], limits: Limits) -> list[pb.FeedbackRequest]:
    """One request per `max_write_docs` judgments."""
    step = max(1, limits.max_write_docs)
    return [pb.FeedbackRequest(query_id=str(query_id), query=query, judgments=items[i:i + step])
            for i in range(0, len(items), step)]


def sum_feedback(responses: list[pb.FeedbackResponse]) -> FeedbackResult:
    return FeedbackResult(recorded=sum(r.recorded for r in responses), requests=len(responses),
                          request_ids=tuple(r.request_id for r in responses), raw=tuple(responses))


def training_pairs(records: Iterable[FeedbackRecord]) -> list[dict[str, Any]]:
    """One judgment per (query_id, doc_id) for `winnow train reranker --judgments`, sorted by query id then
    document id: the latest explicit judgment, else the latest click (see the module docstring)."""
    best: dict[tuple[str, str], FeedbackRecord] = {}
    latest_text: dict[str, tuple[tuple[int, int], str]] = {}
    for r in records:
        order = (r.recorded_at_ms, r.seq)
        if r.query_id not in latest_text or order >= latest_text[r.query_id][0]:
            latest_text[r.query_id] = (order, r.query)
        key = (r.query_id, r.doc_id)
        held = best.get(key)
        if held is None or _wins(r, held):
            best[key] = r
    return [{"query": latest_text[q][1], "query_id": q, "doc_id": d, "relevance": best[(q, d)].relevance}
            for q, d in sorted(best)]


def _wins(new: FeedbackRecord, held: FeedbackRecord) -> bool:
    """Whether `new` replaces `held` for one (query, document): judgments beat clicks, then the later wins."""
    if (new.kind == JUDGMENT) != (held.kind == JUDGMENT):
        return new.kind == JUDGMENT
    return (new.recorded_at_ms, new.seq) >= (held.recorded_at_ms, held.seq)
