"""`winnow train reranker`: fine-tune a cross-encoder on your own data; the reranker serves the result.

    winnow train reranker --dataset ../shared/datasets/scifact --split train --out models/scifact-ce
    winnow train reranker --dataset DIR --judgments judgments.jsonl --out MODEL_DIR
    winnow train reranker --dataset DIR --self-supervised --out MODEL_DIR      # no judgments: the corpus alone
    winnow train ltr --dataset DIR --split train --reranker-model MODEL_DIR --out ltr.json   # the final LTR stage

Serve it: `winnow eval --reranker-model MODEL_DIR` (or the reranker with scorer=cross-encoder, model_dir=MODEL_DIR).
Exit codes: 0 trained, 2 bad input (dataset, split, judgments, model directory, existing output), 1 failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from winnow.train.judgments import add_source_flags
from winnow.train.ltr import add_parser as add_ltr_parser, run_ltr

log = logging.getLogger(__name__)
T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="winnow train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("reranker", help="fine-tune a cross-encoder (see winnow train reranker --help)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = add_source_flags(r)
    src.add_argument("--self-supervised", action="store_true",
                     help="no judgments: pseudo-queries made from the corpus itself (titles, sentences).")
    r.add_argument("--out", required=True, type=Path, help="output model directory (written atomically).")
    r.add_argument("--overwrite", action="store_true", help="replace --out if it exists.")
    r.add_argument("--base-model", type=Path, default=None,
                   help="encoder directory to start from (default: the packaged all-MiniLM-L6-v2).")
    r.add_argument("--first-stage-model", type=Path, default=None,
                   help="bi-encoder of the first stage used to mine negatives (default: the packaged MiniLM).")
    r.add_argument("--epochs", type=float, default=2.0)
    r.add_argument("--lr", type=float, default=8e-5)
    r.add_argument("--negatives", type=int, default=3, help="hard negatives per (query, positive) group.")
    r.add_argument("--groups-per-batch", type=int, default=4)
    r.add_argument("--max-length", type=int, default=256, help="tokens per (query, document) pair.")
    r.add_argument("--depth", type=int, default=30, help="negatives are drawn from the first stage's top DEPTH.")
    r.add_argument("--holdout", type=int, default=80,
                   help="training queries held out to choose the fusion weight (0: keep the default weight).")
    r.add_argument("--fusion-depth", type=int, default=30,
                   help="first-stage candidates scored per held-out query to choose the fusion weight.")
    r.add_argument("--max-queries", type=int, default=0,
                   help="use at most this many training queries (self-supervised default: 2000).")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--time-budget", type=float, default=0.0,
                   help="seconds of training at most; the schedule is re-planned to fit (0 = no budget).")
    r.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    r.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0 = the CPUs this process may use, a container's CPU limit included).")
    r.add_argument("--bf16", default="auto", choices=("auto", "on", "off"),
                   help="CPU bf16 autocast for training and scoring; auto = only where the CPU has native bf16 "
                   "(AMX / AVX512-BF16), where it measured about 2x faster (default: auto).")
    r.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "winnow" / "train",
                   help="where corpus vectors of the first stage are cached (default ~/.cache/winnow/train).")
    r.add_argument("--no-progress", action="store_true")
    add_ltr_parser(sub)
    return p


def _bars(enabled: bool):
    from tqdm import tqdm

    def make(desc: str, total: int):
        bar = tqdm(total=total, desc=desc, file=sys.stderr, disable=not enabled, dynamic_ncols=True, mininterval=2)

        def advance(n: int = 1, total: int | None = None, loss: float | None = None) -> None:
            if total is not None:
                bar.total = total
                bar.refresh()
            if loss is not None:
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            bar.update(n)
            if bar.total and bar.n >= bar.total:
                bar.close()

        return advance

    return make


def guarded(prog: str, check: Callable[[], T], run: Callable[[T], int]) -> int:
    """Run a training command: `check` its inputs (bad input: exit 2, nothing written), then `run` it (exit 0;
    a model that will not load: 2; interrupted: 130; any other failure: 1, one line saying what failed)."""
    from winnow.models.loading import ModelLoadError, force_offline
    from winnow.train.judgments import TrainInputError

    force_offline()
    try:
        checked = check()
    except (TrainInputError, ModelLoadError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    try:
        return run(checked)
    except ModelLoadError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence: say what failed, exit non-zero
        log.debug("%s failed", prog, exc_info=True)
        print(f"{prog}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def run_reranker(args: argparse.Namespace) -> int:
    from winnow.models.loading import check_model_dir, default_model_dir
    from winnow.train.judgments import TrainInputError, from_source, load_dataset_corpus

    bars = _bars(not args.no_progress)
    t0 = time.perf_counter()

    def check():
        if args.out.exists() and not args.overwrite:
            raise TrainInputError(f"output directory {args.out} exists; pass --overwrite to replace it")
        base = check_model_dir(args.base_model or default_model_dir())
        check_model_dir(args.first_stage_model or default_model_dir())
        if args.negatives < 1 or args.max_length < 16 or args.epochs <= 0 or args.groups_per_batch < 1:
            raise TrainInputError("--negatives >= 1, --max-length >= 16, --epochs > 0, --groups-per-batch >= 1")
        corpus = load_dataset_corpus(args.dataset)
        if not corpus:
            raise TrainInputError(f"dataset {args.dataset}: the corpus is empty")
        if args.self_supervised:
            return base, corpus, "self-supervised", None
        return base, corpus, *from_source(args.dataset, corpus, args.judgments, args.split)

    def run(checked) -> int:
        base, corpus, source, queries = checked
        if args.self_supervised:
            from winnow.train.self_supervised import run_self_supervised

            return run_self_supervised(args, corpus, base, bars, t0)
        from winnow.train.pipeline import run_judged

        return run_judged(args, corpus, queries, source, base, bars, t0)

    return guarded("winnow train reranker", check, run)


def main(argv: list[str]) -> int:
    """Entry point of `winnow train`; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    args = build_parser().parse_args(argv)
    if args.what == "reranker":
        return run_reranker(args)
    if args.what == "ltr":
        return run_ltr(args)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
