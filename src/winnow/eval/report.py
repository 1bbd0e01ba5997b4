"""`winnow eval --report DIR`: what an eval run leaves behind for people and tools.

    DIR/runs/<pipeline>.trec   per-query rankings, TREC run format (qid Q0 docid rank score tag), for trec_eval
    DIR/summary.json           every figure of the run: metrics, recall@k curves, latency per stage, run details
    DIR/report.png             nDCG@10 per pipeline, recall@k curves, latency per stage (p50, with p99 marks)
    DIR/report.html            the picture and the tables, one self-contained page

The summary's metrics are recomputed from the run files' rankings with `winnow.eval.metrics`, so the two always
agree (a test checks it).
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

import numpy as np

from winnow.eval.beir import BeirDataset
from winnow.eval.metrics import judged_queries, ranked, recall_at_k
from winnow.eval.results import REPORTED, EvalReport

#: k values of the recall@k curves.
CURVE_KS = (1, 2, 3, 5, 10, 20, 30, 50, 80, 100)
#: Stages drawn in the latency panel, in pipeline order (the gateway's timings_ms plus the client's wall time).
STAGES = ("cache", "embed", "search", "merge", "fusion", "rerank", "total", "client")


def run_file_lines(name: str, run: dict[str, dict[str, float]]) -> list[str]:
    """TREC run lines for one pipeline: queries sorted, documents in the order the gateway returned them."""
    lines = []
    for qid in sorted(run):
        for rank, doc_id in enumerate(ranked(run[qid]), 1):
            lines.append(f"{qid} Q0 {doc_id} {rank} {run[qid][doc_id]:.6f} winnow-{name}")
    return lines


def read_run_file(path: Path) -> dict[str, list[str]]:
    """qid -> doc ids in rank order, from a TREC run file."""
    out: dict[str, list[tuple[int, str]]] = {}
    for line in path.read_text().splitlines():
        qid, _, doc_id, rank, _score, _tag = line.split()
        out.setdefault(qid, []).append((int(rank), doc_id))
    return {q: [d for _, d in sorted(v)] for q, v in out.items()}


def recall_curve(run: dict[str, dict[str, float]], dataset: BeirDataset, ks=CURVE_KS) -> dict[str, float]:
    """Mean recall@k over the judged queries, for each k (a query missing from the run scores 0)."""
    judged = judged_queries(dataset.qrels)
    curve = {}
    for k in ks:
        vals = [recall_at_k(ranked(run.get(q, {})), dataset.qrels[q], k) for q in judged]
        curve[str(k)] = round(float(np.mean(vals)) if vals else 0.0, 4)
    return curve


def summary(report: EvalReport, dataset: BeirDataset, run_details: dict) -> dict:
    """The summary.json object."""
    pipelines = {}
    for name, res in report.pipelines.items():
        entry = res.to_json()
        entry["recall_at_k"] = recall_curve(res.run, dataset)
        entry["run_file"] = f"runs/{name}.trec"
        pipelines[name] = entry
    return {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "dataset": report.dataset,
            "split": report.split, "queries": report.queries, "documents": report.documents,
            "cluster": report.cluster, "run": run_details, "metrics": list(REPORTED), "pipelines": pipelines}


def plot(summary_: dict, path: Path) -> None:
    """The report picture: nDCG@10 per pipeline, recall@k curves, latency per stage."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    pipes = summary_["pipelines"]
    names = list(pipes)
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.6), gridspec_kw={"width_ratios": [1, 1.1, 1.4]})
    title = (f"{Path(summary_['dataset']).name} · {summary_['split']} · {summary_['queries']} queries · "
             f"{summary_['documents']} documents")
    fig.suptitle(f"winnow eval — {title}", fontsize=13)

    ax = axes[0]
    ranked_names = [n for n in names if "ndcg@10" in pipes[n] and pipes[n].get("bulk") is None]
    vals = [pipes[n]["ndcg@10"] for n in ranked_names]
    bars = ax.barh(ranked_names[::-1], vals[::-1], color=[colours(names.index(n) % 10) for n in ranked_names[::-1]])
    for bar, v in zip(bars, vals[::-1]):
        ax.text(bar.get_width() + 0.005, bar.get_y() + bar.get_height() / 2, f"{v:.3f}", va="center", fontsize=9)
    ax.set_xlim(0, max(vals + [0.1]) * 1.18)
    ax.set_xlabel("nDCG@10 (higher is better)")
    ax.set_title("ranking quality")
    ax.grid(axis="x", alpha=0.3)

    ax = axes[1]
    for n in ranked_names:
        curve = pipes[n]["recall_at_k"]
        ks = [int(k) for k in curve]
        ax.plot(ks, list(curve.values()), marker="o", ms=3, label=n, color=colours(names.index(n) % 10))
    ax.set_xscale("log")
    ax.set_xticks(list(CURVE_KS))
    ax.set_xticklabels([str(k) for k in CURVE_KS])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("k (log scale)")
    ax.set_ylabel("recall@k")
    ax.set_title("recall@k: is the relevant document in the top k?")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")

    ax = axes[2]
    stages = [s for s in STAGES if any(s in pipes[n]["latency_ms"] for n in names)]
    width = 0.8 / max(1, len(names))
    x = np.arange(len(stages))
    for i, n in enumerate(names):
        lat = pipes[n]["latency_ms"]
        p50 = [lat.get(s, {}).get("p50", 0.0) for s in stages]
        p99 = [lat.get(s, {}).get("p99", 0.0) for s in stages]
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, p50, width, label=n, color=colours(i % 10))
        ax.scatter(pos, p99, marker="_", s=60, color="black", zorder=3, linewidths=1)
    ax.set_xticks(x)
    ax.set_xticklabels(stages)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylabel("ms (bars p50, ticks p99; symlog)")
    ax.set_title("latency per stage")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _html(summary_: dict, png: bytes) -> str:
    pipes = summary_["pipelines"]
    head = "".join(f"<th>{html.escape(m)}</th>" for m in summary_["metrics"])
    rows = []
    for name, p in pipes.items():
        cells = "".join(f"<td>{p.get(m, 0):.4f}</td>" for m in summary_["metrics"])
        lat = p["latency_ms"].get("total") or p["latency_ms"].get("client") or {}
        rows.append(f"<tr><td>{html.escape(name)}</td>{cells}<td>{p['queries']}</td><td>{p['errors']}</td>"
                    f"<td>{lat.get('p50', 0):.1f} / {lat.get('p99', 0):.1f}</td>"
                    f"<td><a href=\"{html.escape(p['run_file'])}\">{html.escape(p['run_file'])}</a></td></tr>")
    cluster = html.escape(json.dumps(summary_.get("cluster", {})))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>winnow eval report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>winnow eval report</h1>
<p>{html.escape(summary_['dataset'])} · split {html.escape(summary_['split'])} · {summary_['queries']} queries ·
{summary_['documents']} documents · {html.escape(summary_['created'])}</p>
<p><code>{cluster}</code></p>
<img alt="nDCG@10 per pipeline, recall@k curves, latency per stage"
 src="data:image/png;base64,{base64.b64encode(png).decode()}">
<h2>Pipelines</h2>
<table><tr><th>pipeline</th>{head}<th>queries</th><th>errors</th><th>total ms p50 / p99</th><th>run file</th></tr>
{''.join(rows)}</table>
<p>All figures: <a href="summary.json">summary.json</a>. Picture: <a href="report.png">report.png</a>.</p>
</body></html>
"""


def write(report: EvalReport, dataset: BeirDataset, out_dir: Path, run_details: dict | None = None) -> dict:
    """Write run files, summary.json, report.png and report.html into `out_dir`; returns the summary."""
    out_dir = Path(out_dir)
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    for name, res in report.pipelines.items():
        (out_dir / "runs" / f"{name}.trec").write_text("\n".join(run_file_lines(name, res.run)) + "\n")
    s = summary(report, dataset, run_details or {})
    (out_dir / "summary.json").write_text(json.dumps(s, indent=2))
    plot(s, out_dir / "report.png")
    (out_dir / "report.html").write_text(_html(s, (out_dir / "report.png").read_bytes()))
    return s
