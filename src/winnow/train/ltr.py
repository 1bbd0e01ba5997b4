"""`winnow train ltr`: learn the gateway's optional final stage from judgments; the gateway serves the file.

    winnow train ltr --dataset ../shared/datasets/scifact --split train --reranker-model models/scifact-ce \\
        --out models/scifact-ltr.json --depth 30
    winnow train ltr --dataset DIR --judgments judgments.jsonl --out ltr.json      # first-stage features only

Per judged query it rebuilds what the gateway holds after the rerank, from the same parts: the cluster's first
stage (`FirstStage.candidates`: the embedder's model, the index's BM25, the gateway's convex fusion, each list cut
to the candidate window `--depth`) and, with `--reranker-model`, the reranker's own `CrossEncoderScorer` (its
`finish()` output, fused with the first stage as its winnow_reranker.json says). Features come from
`winnow.models.ltr_features.feature_matrix`, the function the gateway calls. Models are fitted and chosen on
held-out *training* queries (`winnow.train.ltr_fit.choose`); serve with the gateway's `ltr_model` setting at a
window equal to `--depth`. Exit codes: 0 written, 2 bad input (nothing written), 1 failed.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from winnow.train.judgments import add_source_flags

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    """The `ltr` subcommand of `winnow train`."""
    r = sub.add_parser("ltr", help="learn the gateway's final LTR stage (see winnow train ltr --help)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_flags(r)
    r.add_argument("--reranker-model", type=Path, default=None,
                   help="the cross-encoder directory the reranker serves; without it the reranker feature is left "
                   "out (the model then also orders first-stage candidates when the reranker is skipped).")
    r.add_argument("--cascade-depth", type=int, default=-1,
                   help="as the reranker's cascade_depth setting it will be served with: -1 = the model directory's "
                   "own (winnow_reranker.json), 0 = the reranker scores the whole window, N = its top N.")
    r.add_argument("--out", required=True, type=Path, help="the model file to write (JSON, written atomically).")
    r.add_argument("--overwrite", action="store_true", help="replace --out if it exists.")
    r.add_argument("--depth", type=int, default=30, help="candidate window per query (= the gateway's window).")
    r.add_argument("--holdout", type=int, default=80,
                   help="training queries held out to choose the model (the reranker's own held-out queries when "
                   "its manifest says which they were).")
    r.add_argument("--models", default="linear,lightgbm",
                   help="models to try, comma-separated: linear, lightgbm (skipped when not installed).")
    r.add_argument("--metadata-field", action="append", default=[], metavar="FIELD",
                   help="a numeric metadata field to use as a feature, e.g. year (repeatable).")
    r.add_argument("--max-queries", type=int, default=0, help="use at most this many training queries (0 = all).")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--time-budget", type=float, default=0.0,
                   help="seconds of reranker scoring at most (held-out queries first); 0 = no budget.")
    r.add_argument("--first-stage-model", type=Path, default=None,
                   help="bi-encoder of the first stage (default: the packaged MiniLM, as the embedder).")
    r.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    r.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0 = the CPUs this process may use, a container's CPU limit included).")
    r.add_argument("--bf16", default="auto", choices=("auto", "on", "off"), help="as the reranker's bf16 setting.")
    r.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "winnow" / "train",
                   help="where corpus vectors of the first stage are cached (default ~/.cache/winnow/train).")
    r.add_argument("--no-progress", action="store_true")


def corpus_metadata(root: Path) -> dict[str, str]:
    """Each document's metadata as the gateway would return it (`metadata_json`): the corpus record's
    `metadata` object plus its title, as `winnow ingest` stores them."""
    from winnow.eval.beir import resolve

    path = resolve(Path(root), "corpus.jsonl")
    out: dict[str, str] = {}
    with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")) as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                meta = dict(rec.get("metadata") or {})
                if (rec.get("title") or "").strip():
                    meta.setdefault("title", rec["title"].strip())
                out[str(rec.get("_id", rec.get("id")))] = json.dumps(meta) if meta else ""
    return out


def window_candidates(fs, queries: Sequence[str], ids: Sequence[str], texts: Sequence[str], window: int,
                      reranker=None, metadata: dict[str, str] | None = None,
                      progress: Callable[[int], None] | None = None, budget_s: float = 0.0) -> list[list]:
    """Per query, its candidate window as the gateway holds it after the rerank: the first stage's Candidates
    with doc ids, text and metadata, and `rerank_score` = what the reranker service answers (`reranker`: its own
    `RerankerCore`, so the scorer's `finish()` and any cascade are the served ones; None = no reranker feature).
    With a budget, stops reranking once it is spent: the lists returned are the queries done, in order."""
    rows = {d: i for i, d in enumerate(ids)}
    lists = fs.candidates(queries, window, ids)
    for fused in lists:
        for c in fused:
            c.text, c.metadata_json = texts[rows[c.id]], (metadata or {}).get(c.id, "")
    if reranker is None:
        if progress is not None:
            progress(len(lists))
        return lists
    return asyncio.run(_reranked(reranker, queries, lists, progress, budget_s))


def served_reranker(scorer, cascade_depth: int = 0, model_dir: Path | None = None):
    """The reranker service's core over `scorer` (cascade as its `cascade_depth` setting: -1 = the model
    directory's own, 0 = every candidate), without the gRPC edge."""
    from winnow.models.trained import read_manifest, served_cascade_depth
    from winnow.services.reranker.core import RerankerCore

    manifest = read_manifest(model_dir) if model_dir is not None else {}
    return RerankerCore(scorer, max_candidates=4096, cascade_depth=served_cascade_depth(manifest, cascade_depth))


async def _reranked(core, queries: Sequence[str], lists: list[list], progress, budget_s: float) -> list[list]:
    from winnow.models.scorer import Candidate as Pair

    core.batcher.start()
    out = []
    started = time.perf_counter()
    try:
        for query, fused in zip(queries, lists):
            if budget_s and out and time.perf_counter() - started > budget_s:
                break
            res = await core.rerank(query, [Pair(c.id, c.text, c.first_stage_rank, c.first_stage_score)
                                            for c in fused])
            for hit in res.results:
                fused[hit.index].rerank_score = float(hit.score)
            out.append(fused)
            if progress is not None:
                progress(1)
    finally:
        await core.close()
    return out


def groups_of(queries, lists: Sequence[Sequence], features: Sequence[str]):
    """ltr_fit.Group per judged query: its window's features, grades (unjudged = 0), ids and ranks."""
    from winnow.models.ltr_features import feature_matrix
    from winnow.train.ltr_fit import Group

    out = []
    for q, cands in zip(queries, lists):
        rels = {**{d: 0 for d in q.negatives}, **q.positives}
        out.append(Group(feature_matrix(cands, features), np.array([max(0, rels.get(c.id, 0)) for c in cands]),
                         [c.id for c in cands], np.array([c.first_stage_rank for c in cands]), rels))
    return out


def features_for(reranker: bool, metadata_fields: Sequence[str]) -> tuple[str, ...]:
    from winnow.models.ltr_features import BASE_FEATURES, META

    return tuple(f for f in BASE_FEATURES if reranker or f != "reranker") + tuple(f"{META}{m}" for m in metadata_fields)


def reranker_held_out(manifest: dict, queries, source: str) -> list | None:
    """The training queries the cross-encoder never saw (its held-out ones), when its manifest says how it split
    the same judgments: its features on those are as on unseen queries, so the LTR is chosen on them."""
    from winnow.train.reranker import split_holdout

    trained = manifest.get("trained") if isinstance(manifest.get("trained"), dict) else {}
    held = (trained.get("fusion") or {}).get("held_out_queries")
    seed = (trained.get("config") or {}).get("seed")
    if trained.get("source") != source or not isinstance(held, int) or not isinstance(seed, int) or held <= 0:
        return None
    if trained.get("train_queries", -1) + held != len(queries):  # it sampled queries (--max-queries): unknown
        return None
    train_q, held_q = split_holdout(queries, held, seed)
    return held_q if len(held_q) == held else None


def _inputs(args):
    """Every check that can fail on the user's input, before any model loads (TrainInputError / ModelLoadError)."""
    from winnow.models.loading import check_model_dir, default_model_dir
    from winnow.models.ltr import lightgbm_available
    from winnow.models.trained import check_cross_encoder_dir
    from winnow.train.judgments import TrainInputError, from_source, load_dataset_corpus

    if args.out.exists() and not args.overwrite:
        raise TrainInputError(f"output file {args.out} exists; pass --overwrite to replace it")
    if args.out.is_dir():
        raise TrainInputError(f"--out {args.out} is a directory; name the model file (e.g. ltr.json)")
    if args.depth < 2 or args.holdout < 0 or args.time_budget < 0 or args.max_queries < 0 or args.cascade_depth < -1:
        raise TrainInputError("--depth >= 2, --holdout >= 0, --time-budget >= 0, --max-queries >= 0, "
                              "--cascade-depth >= -1")
    kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    if not kinds or any(k not in ("linear", "lightgbm") for k in kinds):
        raise TrainInputError(f"--models {args.models!r}: choose from linear, lightgbm")
    if "lightgbm" in kinds and not lightgbm_available():
        if kinds == ["lightgbm"]:
            raise TrainInputError("--models lightgbm: the lightgbm package is not installed (pip install 'winnow[ltr]')")
        log.warning("lightgbm is not installed: trying the linear model only")
        kinds.remove("lightgbm")
    for m in args.metadata_field:
        if not m.strip() or m != m.strip():
            raise TrainInputError(f"--metadata-field {m!r}: a field name, e.g. year")
    check_model_dir(args.first_stage_model or default_model_dir())
    reranker = check_cross_encoder_dir(args.reranker_model) if args.reranker_model is not None else None
    corpus = load_dataset_corpus(args.dataset)
    if not corpus:
        raise TrainInputError(f"dataset {args.dataset}: the corpus is empty")
    source, queries = from_source(args.dataset, corpus, args.judgments, args.split)
    return corpus, source, queries, kinds, reranker


def run_ltr(args: argparse.Namespace) -> int:
    """`winnow train ltr`: 0 written, 2 bad input (nothing written), 1 failed, 130 interrupted."""
    from winnow.train.cli import guarded

    return guarded("winnow train ltr", lambda: _inputs(args), lambda checked: _run(args, *checked))


def _run(args, corpus, source: str, queries, kinds, reranker: Path | None) -> int:
    import random

    from winnow.ingest import document_text
    from winnow.models import ltr
    from winnow.train.cli import _bars
    from winnow.train.ltr_fit import choose
    from winnow.train.pipeline import build_first_stage
    from winnow.train.reranker import split_holdout

    t0 = time.perf_counter()
    bars = _bars(not args.no_progress)
    if args.max_queries and len(queries) > args.max_queries:
        queries = random.Random(args.seed).sample(queries, args.max_queries)
    ids = list(corpus)
    texts = [document_text(d.title, d.text) for d in corpus.values()]
    metadata = corpus_metadata(args.dataset) if args.metadata_field else None
    core, held, how = None, None, "drawn by --seed"
    if reranker is not None:
        from winnow.models.scorer import CrossEncoderScorer
        from winnow.models.trained import read_manifest

        scorer = CrossEncoderScorer(reranker, device=args.device, bf16=args.bf16)
        core = served_reranker(scorer, args.cascade_depth, reranker)
        held = reranker_held_out(read_manifest(reranker), queries, source)
        how = "the reranker's own held-out queries" if held is not None else how
    if held is None:
        _, held = split_holdout(queries, args.holdout, args.seed)
    held_ids = {q.id for q in held}
    ordered = list(held) + [q for q in queries if q.id not in held_ids]  # held out first: a budget keeps them
    fs = build_first_stage(args, texts, bars)
    started = time.perf_counter()
    lists = window_candidates(fs, [q.text for q in ordered], ids, texts, args.depth, core, metadata,
                              bars("score windows", len(ordered)), args.time_budget)
    scoring_s = time.perf_counter() - started
    features = features_for(core is not None, args.metadata_field)
    groups = groups_of(ordered, lists, features)
    held_g, fit_g = groups[: len(held)], groups[len(held):]
    if not fit_g:
        raise RuntimeError("the time budget ran out before any training query was scored; raise --time-budget")
    # One LightGBM thread: a seed then gives the same model on any machine (the fit takes seconds).
    model = choose(fit_g, held_g, features, args.depth, args.seed, kinds, threads=1)
    model.report.update({
        "source": source, "dataset": str(args.dataset), "depth": args.depth, "held_out_from": how,
        "queries_scored": len(lists), "queries": len(ordered), "stopped_by_budget": len(lists) < len(ordered),
        "reranker": f"{core.scorer.model_id}/{core.scorer_name}" if core is not None else "",
        "cascade_depth": core.cascade_depth if core is not None else None,
        "first_stage": fs.encoder.model_id, "seconds": {"scoring": round(scoring_s, 1),
                                                        "total": round(time.perf_counter() - t0, 1)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    ltr.save(model, args.out, overwrite=args.overwrite)
    r = model.report
    scores = ", ".join(f"{k} {v:.4f}" for k, v in r["held_out_ndcg@10"].items())
    print(f"winnow train ltr: {len(fit_g)} fit + {len(held_g)} held-out queries ({how}), depth {args.depth}, "
          f"features {', '.join(features)}", file=sys.stderr)
    print(f"held-out nDCG@10: {scores or '-'}; chosen: {r['chosen']}"
          + (" (no model beat the order it would replace; the file serves that order unchanged)"
             if r["chosen"] == "none" else ""),
          file=sys.stderr)
    print(f"wrote {args.out} ({model.label}) in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    print(str(args.out))
    return 0
