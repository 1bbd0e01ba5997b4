"""Feedback without a log: the edge's validation (field and reason per defect, a bad batch records nothing), the
core's acknowledgement rules over an in-memory log, the log's subjects and bodies, the client's checks, the
export's aggregation into training pairs, and that `winnow.train.judgments.from_file` reads what the export
writes against a small BEIR corpus."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.conftest import sample_docs
from winnow.api.gateway.v1 import gateway_pb2 as pb
from winnow.cli import main
from winnow.cli.failures import Exit
from winnow.cli.feedback import _judgment, _write_lines
from winnow.client.errors import InvalidArgumentError
from winnow.client.feedback import FeedbackRecord, Judgment, judgments, training_pairs
from winnow.common.deadline import Deadline
from winnow.common.errors import InvalidArgument, Unavailable
from winnow.log import feedback as flog
from winnow.log.client import AppendResult
from winnow.services.gateway.convert_feedback import feedback_from_proto, feedback_record_to_proto
from winnow.services.gateway.feedback import FeedbackBatch, FeedbackCore
from winnow.services.gateway.feedback import Judgment as CoreJudgment
from winnow.services.gateway.settings import GatewaySettings
from winnow.train.judgments import from_file, load_dataset_corpus

S = GatewaySettings(max_write_docs=3, max_query_chars=20, max_id_bytes=8)


def req(query_id="q1", query="aspirin", items=None) -> pb.FeedbackRequest:
    if items is None:
        items = [pb.Judgment(doc_id="d1", relevance=2)]
    return pb.FeedbackRequest(query_id=query_id, query=query, judgments=items)


# -- validation at the edge ------------------------------------------------------------------------------------

def test_a_good_batch_with_defaults():
    batch = feedback_from_proto(req(query=" aspirin ", items=[
        pb.Judgment(doc_id="d1", relevance=2), pb.Judgment(doc_id="d2", relevance=0, kind="judgment"),
        pb.Judgment(doc_id="d1", kind="click"), pb.Judgment(doc_id="d3", kind="click", relevance=3)]),
        S.model_copy(update={"max_write_docs": 4}))
    assert batch == FeedbackBatch("q1", "aspirin", (
        CoreJudgment("d1", 2, "judgment"), CoreJudgment("d2", 0, "judgment"), CoreJudgment("d1", 1, "click"),
        CoreJudgment("d3", 3, "click")))


@pytest.mark.parametrize("request_, field, reason", [
    (req(query_id=""), "query_id", "EMPTY_ID"),
    (req(query_id="   "), "query_id", "EMPTY_ID"),
    (req(query_id="q" * 9), "query_id", "ID_TOO_LONG"),
    (req(query="  "), "query", "QUERY_EMPTY"),
    (req(query="x" * 21), "query", "QUERY_TOO_LONG"),
    (req(items=[]), "judgments", "EMPTY_REQUEST"),
    (req(items=[pb.Judgment(doc_id=f"d{i}", relevance=1) for i in range(4)]), "judgments", "TOO_MANY_ITEMS"),
    (req(items=[pb.Judgment(doc_id="d1", relevance=1), pb.Judgment(doc_id="d2", relevance=1),
                pb.Judgment(doc_id=" ", relevance=1)]), "judgments[2].doc_id", "EMPTY_ID"),
    (req(items=[pb.Judgment(doc_id="d" * 9, relevance=1)]), "judgments[0].doc_id", "ID_TOO_LONG"),
    (req(items=[pb.Judgment(doc_id="d1", relevance=-1)]), "judgments[0].relevance", "BAD_RELEVANCE"),
    (req(items=[pb.Judgment(doc_id="d1", relevance=101)]), "judgments[0].relevance", "BAD_RELEVANCE"),
    (req(items=[pb.Judgment(doc_id="d1")]), "judgments[0].relevance", "BAD_RELEVANCE"),  # a judgment needs a grade
    (req(items=[pb.Judgment(doc_id="d1", relevance=1, kind="like")]), "judgments[0].kind", "BAD_FEEDBACK_KIND"),
    (req(items=[pb.Judgment(doc_id="d1", relevance=1), pb.Judgment(doc_id="d1", relevance=0)]),
     "judgments[1].doc_id", "DUPLICATE_ID"),
])
def test_bad_requests_name_the_field_and_reason(request_, field, reason):
    with pytest.raises(InvalidArgument) as err:
        feedback_from_proto(request_, S)
    assert (err.value.field, err.value.reason) == (field, reason)
    assert field.split("[")[0] in str(err.value)


def test_over_limit_errors_carry_the_limit():
    with pytest.raises(InvalidArgument) as err:
        feedback_from_proto(req(items=[pb.Judgment(doc_id="d1", relevance=500)]), S)
    assert err.value.info == {"limit": "100"}
    with pytest.raises(InvalidArgument) as err:
        feedback_from_proto(req(items=[pb.Judgment(doc_id=f"d{i}", relevance=1) for i in range(4)]), S)
    assert err.value.info == {"limit": "3"}


def test_records_convert_to_their_message():
    rec = flog.FeedbackRecord("q1", "aspirin", "d1", 2, "click", 1_700_000_000_123, 42)
    msg = feedback_record_to_proto(rec)
    assert (msg.query_id, msg.query, msg.doc_id, msg.relevance, msg.kind, msg.recorded_at_ms, msg.seq) == \
        ("q1", "aspirin", "d1", 2, "click", 1_700_000_000_123, 42)


# -- the log's names and bodies --------------------------------------------------------------------------------

def test_one_subject_per_query_doc_and_kind_never_inside_a_partition_stream():
    a = flog.subject("q1", "d1", "judgment")
    assert a == flog.subject("q1", "d1", "judgment")
    assert len({a, flog.subject("q1", "d1", "click"), flog.subject("q1", "d2", "judgment"),
                flog.subject("q2", "d1", "judgment")}) == 4
    assert a.startswith(flog.ROOT + ".") and not a.startswith("winnow.")  # layouts live under winnow.<layout>.
    odd = flog.subject("q with spaces.and.dots", "doc*>", "click")
    assert len(odd.split(".")) == 4  # the ids are hashed: no wildcard or dot reaches the subject
    with pytest.raises(ValueError):
        flog.subject("q", "d", "like")


def test_bodies_round_trip_and_garbage_is_skipped():
    rec = flog.FeedbackRecord("q1", "vitamin D é", "d1", 3, "judgment", 123)
    assert flog.decode(flog.encode(rec), 7) == flog.FeedbackRecord("q1", "vitamin D é", "d1", 3, "judgment", 123, 7)
    assert flog.decode(b"not json", 8) is None
    assert flog.decode(b'{"query_id": "q"}', 9) is None


# -- the core: acknowledged only when all are --------------------------------------------------------------------

class MemoryLog:
    """The feedback log in memory: the latest record per subject; `ack_only` acknowledges a prefix."""

    def __init__(self):
        self.subjects: dict[str, flog.FeedbackRecord] = {}
        self.seq = 0
        self.ack_only: int | None = None
        self.error = ""

    async def record(self, records, timeout):
        take = records if self.ack_only is None else records[: self.ack_only]
        for r in take:
            self.seq += 1
            self.subjects[flog.subject(r.query_id, r.doc_id, r.kind)] = flog.FeedbackRecord(
                r.query_id, r.query, r.doc_id, r.relevance, r.kind, r.recorded_at_ms, self.seq)
        error = self.error or ("" if len(take) == len(records) else "JetStream did not acknowledge within 1.0s")
        return AppendResult(0, len(take), len(records), self.seq, error)

    async def export(self, after_seq=0, wait_s=5.0):
        for r in sorted(self.subjects.values(), key=lambda r: r.seq):
            if r.seq > after_seq:
                yield r


BATCH = FeedbackBatch("q1", "aspirin", (CoreJudgment("d1", 2, "judgment"), CoreJudgment("d2", 0, "judgment"),
                                        CoreJudgment("d1", 1, "click")))


async def _export(core, after_seq=0):
    return [r async for r in core.export(Deadline(5), after_seq)]


async def test_record_then_export_and_the_latest_wins():
    log = MemoryLog()
    core = FeedbackCore(log, clock=lambda: 1000.5)
    assert await core.record(BATCH, Deadline(5)) == 3
    assert await core.record(FeedbackBatch("q1", "aspirin", (CoreJudgment("d2", 1, "judgment"),)), Deadline(5)) == 1
    out = await _export(core)
    assert [(r.doc_id, r.kind, r.relevance) for r in out] == [("d1", "judgment", 2), ("d1", "click", 1),
                                                              ("d2", "judgment", 1)]
    assert {r.recorded_at_ms for r in out} == {1_000_500}
    assert [r.doc_id for r in await _export(core, after_seq=out[0].seq)] == ["d1", "d2"]


async def test_a_partial_ack_is_unavailable_saying_how_many():
    log = MemoryLog()
    log.ack_only = 2
    with pytest.raises(Unavailable, match=r"only 2 of 3 judgments were recorded.*retry the whole request"):
        await FeedbackCore(log).record(BATCH, Deadline(5))


async def test_an_unreachable_log_records_nothing_and_says_so():
    log = MemoryLog()
    log.ack_only, log.error = 0, "the document log (nats://x) is unreachable (ConnectionRefusedError)"
    with pytest.raises(Unavailable, match=r"^nothing was recorded: the document log .* unreachable"):
        await FeedbackCore(log).record(BATCH, Deadline(5))
    with pytest.raises(Unavailable, match="no log configured"):
        await FeedbackCore(None).record(BATCH, Deadline(5))
    with pytest.raises(Unavailable, match="no log configured"):
        await _export(FeedbackCore(None))


# -- the client: checked before sending; training pairs ------------------------------------------------------

def test_client_builds_judgments_and_checks_them_first():
    msgs = judgments("q1", "aspirin", [Judgment("d1", 2), Judgment.click("d1"), {"doc_id": "d2", "relevance": 0}])
    assert [(m.doc_id, m.kind, m.HasField("relevance"), m.relevance) for m in msgs] == [
        ("d1", "judgment", True, 2), ("d1", "click", False, 0), ("d2", "judgment", True, 0)]
    for args, field in [(("", "q", [Judgment("d", 1)]), "query_id"), (("q", " ", [Judgment("d", 1)]), "query"),
                        (("q", "x", []), "judgments"), (("q", "x", [Judgment("", 1)]), "judgments[0].doc_id"),
                        (("q", "x", [Judgment("d")]), "judgments[0].relevance"),
                        (("q", "x", [Judgment("d", 101)]), "judgments[0].relevance"),
                        (("q", "x", [Judgment("d", True)]), "judgments[0].relevance"),
                        (("q", "x", [Judgment("d", 1, "like")]), "judgments[0].kind"),
                        (("q", "x", [Judgment("d", 1), Judgment("d", 0)]), "judgments[1].doc_id"),
                        (("q", "x", ["d"]), "judgments[0]")]:
        with pytest.raises(InvalidArgumentError) as err:
            judgments(*args)
        assert err.value.reason == "CLIENT_VALIDATION" and err.value.field_violations[0][0] == field


def rec(q, d, rel, kind="judgment", at=0, seq=0, query=None):
    return FeedbackRecord(q, query or f"text of {q}", d, rel, kind, at, seq)


def test_training_pairs_judgments_override_clicks_and_the_latest_text_wins():
    records = [
        rec("q1", "d1", 1, "click", at=10, seq=1),
        rec("q1", "d1", 0, "judgment", at=5, seq=2),     # an explicit "not relevant" beats a later click
        rec("q1", "d2", 1, "click", at=11, seq=3),       # clicks only: the click's grade
        rec("q1", "d3", 2, "judgment", at=12, seq=4, query="newer text of q1"),
        rec("q0", "d9", 3, "judgment", at=1, seq=5),
        rec("q2", "d1", 4, "click", at=2, seq=6),        # a click with its own grade
    ]
    assert training_pairs(records) == [
        {"query": "text of q0", "query_id": "q0", "doc_id": "d9", "relevance": 3},
        {"query": "newer text of q1", "query_id": "q1", "doc_id": "d1", "relevance": 0},
        {"query": "newer text of q1", "query_id": "q1", "doc_id": "d2", "relevance": 1},
        {"query": "newer text of q1", "query_id": "q1", "doc_id": "d3", "relevance": 2},
        {"query": "text of q2", "query_id": "q2", "doc_id": "d1", "relevance": 4},
    ]
    assert training_pairs(reversed(records)) == training_pairs(records)  # order of arrival does not matter
    assert training_pairs([]) == []


def small_beir(tmp_path, n=20):
    """A BEIR directory of the first n sample abstracts (corpus only)."""
    root = tmp_path / "beir"
    root.mkdir()
    docs = sample_docs(n)
    with gzip.open(root / "corpus.jsonl.gz", "wt") as fh:
        for d in docs:
            fh.write(json.dumps(d) + "\n")
    return root, [d["_id"] for d in docs]


def test_the_exported_file_is_a_judgments_file_train_reads(tmp_path):
    root, ids = small_beir(tmp_path)
    records = [rec("q1", ids[0], 2, at=1, seq=1), rec("q1", ids[1], 0, at=1, seq=2),
               rec("q1", ids[2], 1, "click", at=2, seq=3), rec("q1", ids[1], 1, "click", at=3, seq=4),
               rec("q2", ids[3], 1, "click", at=4, seq=5), rec("q2", "not-in-corpus", 1, at=4, seq=6)]
    out = tmp_path / "out" / "feedback.jsonl"
    _write_lines(str(out), training_pairs(records))
    queries = from_file(out, root, load_dataset_corpus(root))
    by_id = {q.id: q for q in queries}
    assert set(by_id) == {"q1", "q2"} and by_id["q1"].text == "text of q1"
    assert by_id["q1"].positives == {ids[0]: 2, ids[2]: 1} and by_id["q1"].negatives == {ids[1]}
    assert by_id["q2"].positives == {ids[3]: 1}
    assert not list(out.parent.glob(".*.tmp"))  # written whole, no temporary left


# -- the CLI's arguments ---------------------------------------------------------------------------------------

def test_cli_doc_arguments():
    assert _judgment("D1=2", click=False) == Judgment("D1", 2, "judgment")
    assert _judgment("D1", click=False) == Judgment("D1", 1, "judgment")
    assert _judgment("D1", click=True) == Judgment("D1", None, "click")
    assert _judgment("a=b=0", click=False) == Judgment("a=b", 0, "judgment")


@pytest.mark.parametrize("argv, code", [
    (["feedback"], Exit.USAGE),
    (["feedback", "add", "--query", "x", "D1"], Exit.USAGE),                       # --query-id is required
    (["feedback", "add", "--query-id", "q", "--query", "x", "D1=high"], Exit.USAGE),
    (["feedback", "add", "--query-id", "q", "--query", "x", "D1=101"], Exit.INVALID_ARGUMENT),  # checked locally
    (["feedback", "add", "--query-id", "q", "--query", "x", "D1", "--target", "127.0.0.1:1", "--timeout", "1"],
     Exit.UNAVAILABLE),
    (["feedback", "export", "--target", "127.0.0.1:1", "--timeout", "1"], Exit.UNAVAILABLE),
])
def test_cli_failures_have_their_exit_codes(argv, code, capsys, monkeypatch):
    monkeypatch.delenv("WINNOW_TARGET", raising=False)
    argv = argv if "--target" in argv or argv[-1] == "feedback" else [*argv, "--target", "127.0.0.1:1"]
    assert main([*argv, "--json"]) == code
    out, _ = capsys.readouterr()
    assert json.loads(out)["error"]["exit_code"] == code

