"""`winnow eval --report`: the files exist and hold what the summary says (the runner against the fake gateway
of test_eval_runner.py, whose rankings are known by construction)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_eval_runner import _dataset, gateway  # noqa: F401 - the fixture
from winnow.eval import report as eval_report
from winnow.eval.metrics import ndcg_at_k, recall_at_k
from winnow.eval.runner import EvalOptions, evaluate_target, select_pipelines


async def test_report_files_hold_what_the_summary_says(gateway, tmp_path: Path) -> None:  # noqa: F811
    fake, channel = gateway
    dataset = _dataset()
    report = await evaluate_target(channel, dataset, select_pipelines(["lexical", "hybrid+rerank", "bulk"]),
                                   EvalOptions(threshold=0.4))
    summary = eval_report.write(report, dataset, tmp_path / "out", {"argv": ["--report", "out"]})

    out = tmp_path / "out"
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary and set(on_disk["pipelines"]) == {"lexical", "hybrid+rerank", "bulk"}
    judged = sorted(dataset.qrels)
    for name, entry in on_disk["pipelines"].items():
        runs = eval_report.read_run_file(out / entry["run_file"])
        assert set(runs) <= set(dataset.queries) and "q3" not in runs  # q3 failed: no lines, scored 0
        ndcg = sum(ndcg_at_k(runs.get(q, []), dataset.qrels[q], 10) for q in judged) / len(judged)
        if entry.get("bulk") is None:
            assert round(ndcg, 4) == entry["ndcg@10"]
        for k, value in entry["recall_at_k"].items():
            mean = sum(recall_at_k(runs.get(q, []), dataset.qrels[q], int(k)) for q in judged) / len(judged)
            assert round(mean, 4) == value
    # q2 ranks d4, d2, d3 by word overlap (ties by id): the run file keeps that order.
    assert eval_report.read_run_file(out / "runs" / "lexical.trec")["q2"][:3] == ["d4", "d2", "d3"]
    line = (out / "runs" / "lexical.trec").read_text().splitlines()[0].split()
    assert line[1] == "Q0" and line[3] == "1" and line[5] == "winnow-lexical"

    png = (out / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "runs/lexical.trec" in page and "hybrid+rerank" in page
