"""`winnow eval` argument handling: bad input exits 2 with a clear message, before any cluster starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from winnow.eval.cli import main


def _tiny(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n')
    (root / "queries.jsonl").write_text('{"_id": "q1", "text": "x"}\n')
    (root / "qrels" / "test.tsv").write_text("q1\td1\t1\n")
    return root


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--pipelines", "bm25,magic"], "unknown pipeline(s) ['magic']"),
        (["--no-ingest"], "--no-ingest needs --target"),
        (["--reranker-model", "/nonexistent/model"], "does not exist"),
        (["--reranker-arg", "max-length"], "expected FLAG=VALUE"),
        (["--reranker-model", "/x", "--target", "127.0.0.1:1"], "configure the private cluster"),
    ],
)
def test_bad_options_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str) -> None:
    assert main(["--dataset", str(_tiny(tmp_path)), *extra]) == 2
    assert message in capsys.readouterr().err


def test_bad_dataset_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _tiny(tmp_path)
    (root / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n{oops\n')
    assert main(["--dataset", str(root)]) == 3
    assert "corpus.jsonl:2: invalid JSON" in capsys.readouterr().err


def test_unreachable_target_exit_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Port 1 on loopback refuses connections; the client gives up on the channel and says so.
    rc = main(["--dataset", str(_tiny(tmp_path)), "--target", "127.0.0.1:1", "--no-progress", "--timeout", "2",
               "--connect-timeout", "1"])
    assert rc == 4
    assert "not reachable" in capsys.readouterr().err


def test_reranker_model_must_be_a_cross_encoder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from winnow.models.loading import default_model_dir

    assert main(["--dataset", str(_tiny(tmp_path)), "--reranker-model", str(default_model_dir())]) == 2
    assert "not a sequence-classification model" in capsys.readouterr().err


def test_reranker_args_become_service_flags(tmp_path: Path) -> None:
    from winnow.eval.cli import reranker_args

    assert reranker_args(None, ["max-length=192", "--ce-fusion-weight=0.4"]) == [
        "--max-length", "192", "--ce-fusion-weight", "0.4"]


def test_ltr_model_is_checked_before_a_cluster_starts_and_becomes_a_gateway_flag(tmp_path: Path,
                                                                                 capsys: pytest.CaptureFixture[str]):
    import numpy as np

    from winnow.eval.cli import ltr_args
    from winnow.models import ltr

    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "winnow-ltr"')
    assert main(["--dataset", str(_tiny(tmp_path)), "--ltr-model", str(bad)]) == 2
    assert f"LTR model file {bad}: not valid JSON" in capsys.readouterr().err
    assert main(["--dataset", str(_tiny(tmp_path / "t")), "--ltr-model", str(bad), "--target", "127.0.0.1:1"]) == 2
    assert "configure the private cluster" in capsys.readouterr().err
    good = tmp_path / "good.json"
    ltr.save(ltr.LtrModel("linear", ("fused",), np.zeros(1), np.ones(1), weights=np.ones(1)), good)
    assert ltr_args(good) == ["--ltr-model", str(good.resolve())] and ltr_args(None) == []


def test_a_rerank_pipeline_may_name_a_cascade_cut() -> None:
    from winnow.eval.runner import pipeline, select_pipelines

    p = pipeline("hybrid+rerank@30")
    assert (p.name, p.rerank, p.rerank_depth, p.first_stage) == ("hybrid+rerank@30", True, 30, "hybrid")
    assert pipeline("hybrid+rerank").rerank_depth == 0
    for bad in ("hybrid@30", "hybrid+rerank@0", "hybrid+rerank@x", "nope"):
        with pytest.raises(ValueError, match="cascade cut"):
            select_pipelines([bad])


def test_the_table_shows_each_rerank_stage_s_gain_over_its_first_stage() -> None:
    from winnow.eval.cli import format_table
    from winnow.eval.results import EvalReport, PipelineResult

    def res(name: str, ndcg: float) -> PipelineResult:
        return PipelineResult(name, {"ndcg@10": ndcg}, {}, queries=10, errors=0, reranked=10)

    report = EvalReport("d", "test", 10, 100, None)
    for name, v in (("hybrid", 0.70), ("hybrid+rerank@20", 0.73), ("hybrid+rerank", 0.7450), ("dense+rerank", 0.6)):
        report.pipelines[name] = res(name, v)
    rows = {line.split()[0]: line.split() for line in format_table(report).splitlines() if line[:1].isalpha()}
    assert rows["hybrid+rerank@20"][2] == "+0.0300" and rows["hybrid+rerank"][2] == "+0.0450"
    assert rows["hybrid"][2] == "-" and rows["dense+rerank"][2] == "-"  # no dense pipeline ran
