"""Fine-tune a cross-encoder with a listwise loss over first-stage hard negatives (plain torch, CPU or CUDA).

Each training group is one query with one relevant text and `negatives` texts sampled (per epoch, by seed) from its
pool of first-stage hard negatives; the loss is softmax cross-entropy over the group's logits with the positive as
the target (the "localized contrastive" loss of Gao et al. 2021, which trains rerankers better than pointwise BCE
on retriever negatives). The model is any Hugging Face encoder directory (e.g. the shipped all-MiniLM-L6-v2),
loaded as AutoModelForSequenceClassification with one label: a fresh head on the encoder's weights.

Determinism: the seed fixes the head's initialisation, the negatives drawn and the group order; on CPU with the
same thread count two runs give the same weights. A time budget re-plans the learning-rate schedule once the step
time is measured, so a budgeted run still ends with a fully decayed rate (its length then depends on the machine).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

REPLAN_AT = (10, 50)  # steps at which a time budget re-plans the schedule from the measured step time


@dataclass(frozen=True)
class Example:
    """A query, one text relevant to it, and a pool of texts that are not (best-ranked first)."""

    query: str
    positive: str
    pool: tuple[str, ...]


@dataclass
class TrainConfig:
    """How to train; defaults follow shared/notes/reranker-training.md (lr 8e-5, ~2 epochs, 256 tokens)."""

    epochs: float = 2.0
    lr: float = 8e-5
    negatives: int = 3  # per group: 1 positive + this many negatives
    groups_per_batch: int = 4  # 4 x (1 + 3) = 16 pairs a step, as the baseline's batch 16
    max_length: int = 256
    warmup: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    time_budget_s: float = 0.0  # 0 = none
    device: str = "auto"
    threads: int = 0
    bf16: str = "auto"  # CPU bf16 autocast: auto = where the CPU has native bf16 (AMX/AVX512-BF16: ~2x faster here)


@dataclass
class TrainReport:
    steps: int = 0
    planned_steps: int = 0
    steps_asked: int = 0  # what --epochs asked for; more than `steps` when the time budget cut the run
    pairs: int = 0
    seconds: float = 0.0
    pairs_per_s: float = 0.0
    final_loss: float = 0.0
    stopped_by_budget: bool = False
    losses: list[float] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_for_training(model_dir: Path, device: str):
    """(tokenizer, model) for training: a one-label sequence-classification model on the encoder's weights."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from winnow.models.loading import ModelLoadError, check_model_dir

    path = check_model_dir(model_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected: that is the head we train
        try:
            model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1, local_files_only=True)
        finally:
            hf_logging.set_verbosity(verbosity)
    except Exception as exc:  # noqa: BLE001 - one clear load error for any broken directory
        raise ModelLoadError(f"could not load {path} as a Hugging Face encoder: {exc}") from exc
    return tokenizer, model.to(device)


def steps_in_budget(step: int, elapsed: float, elapsed_at_first: float, budget_s: float, asked: int) -> int:
    """How many steps a run should plan for: the measured rate (from the start at the first re-plan, then since
    the first re-plan: the first steps are slow) extrapolated over the budget left, at most `asked`, at least one
    more than `step`."""
    if step <= REPLAN_AT[0]:
        rate = elapsed / max(step, 1)
    else:
        rate = (elapsed - elapsed_at_first) / (step - REPLAN_AT[0])
    fits = step + int(max(0.0, budget_s - elapsed) / max(rate, 1e-9))
    return max(step + 1, min(asked, fits))


def _groups(examples: Sequence[Example], negatives: int, rng: random.Random) -> list[tuple[str, list[str]]]:
    """One epoch's groups: (query, [positive, negative...]); pools shorter than `negatives` are topped up with
    random other examples' positives (in-batch style) so every group has the same size."""
    out = []
    for ex in examples:
        pool = list(ex.pool)
        negs = rng.sample(pool, negatives) if len(pool) >= negatives else pool[:]
        while len(negs) < negatives:
            other = examples[rng.randrange(len(examples))]
            if other.positive != ex.positive:
                negs.append(other.positive)
        out.append((ex.query, [ex.positive, *negs]))
    rng.shuffle(out)
    return out


def train(examples: Sequence[Example], model_dir: Path, config: TrainConfig,
          progress: Callable[[int], Callable[..., None]] | None = None):
    """Train and return (tokenizer, model on CPU or its device, TrainReport)."""
    import torch

    from winnow.models.loading import choose_placement, set_threads, use_cpu_bf16

    if not examples:
        raise ValueError("no training examples")
    set_threads(config.threads)
    placement = choose_placement(config.device)
    seed_everything(config.seed)
    tokenizer, model = load_for_training(model_dir, placement.device)
    model.train()
    rng = random.Random(config.seed)
    per_epoch = math.ceil(len(examples) / config.groups_per_batch)
    planned = max(1, round(per_epoch * config.epochs))
    epochs_needed = math.ceil(planned / per_epoch)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm")
    params = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
         "weight_decay": config.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(params, lr=config.lr)
    plan = {"total": planned}

    def lr_at(step: int) -> float:
        warm = max(1, int(plan["total"] * config.warmup))
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (plan["total"] - step) / max(1, plan["total"] - warm))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    report = TrainReport(planned_steps=planned, steps_asked=planned)
    bar = progress(planned) if progress else None
    amp = placement.device == "cuda"
    bf16 = use_cpu_bf16(placement, config.bf16)
    log.info("training on %s%s", placement.device, " (bf16 autocast)" if bf16 else " (fp16 autocast)" if amp else "")
    size = 1 + config.negatives
    started = time.perf_counter()
    step = 0
    ema = None
    marks: list[float] = []
    for _ in range(epochs_needed):
        groups = _groups(examples, config.negatives, rng)
        for b in range(0, len(groups), config.groups_per_batch):
            if step >= plan["total"]:
                break
            batch = groups[b : b + config.groups_per_batch]
            queries = [q for q, texts in batch for _ in texts]
            texts = [t for _, ts in batch for t in ts]
            feats = tokenizer(queries, texts, truncation="longest_first", max_length=config.max_length,
                              padding=True, return_tensors="pt").to(placement.device)
            with torch.autocast("cuda", dtype=torch.float16, enabled=amp), \
                    torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(**feats).logits.float().view(len(batch), size)
            loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long,
                                                                         device=logits.device))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            report.pairs += len(texts)
            value = float(loss.detach())
            ema = value if ema is None else 0.98 * ema + 0.02 * value
            if step % 10 == 0:
                report.losses.append(round(ema, 4))
            elapsed = time.perf_counter() - started
            if config.time_budget_s > 0 and step in REPLAN_AT:
                # The first steps are slow (allocator, kernel choice): plan at step 10, then again at 50 from the
                # rate since step 10, never past the epochs asked for.
                total = steps_in_budget(step, elapsed, marks[0] if marks else 0.0, config.time_budget_s, planned)
                if total != plan["total"]:
                    log.warning("time budget %.0fs fits about %d of %d steps: schedule re-planned",
                                config.time_budget_s, total, planned)
                    plan["total"] = total
                    if bar is not None:
                        bar(0, total=plan["total"])
                marks.append(elapsed)
            if config.time_budget_s > 0 and elapsed >= config.time_budget_s:
                plan["total"] = step
            if bar is not None:
                bar(1, loss=ema)
        if step >= plan["total"]:
            break
    report.steps = step
    report.stopped_by_budget = step < planned
    report.planned_steps = plan["total"]
    report.seconds = round(time.perf_counter() - started, 1)
    report.pairs_per_s = round(report.pairs / max(report.seconds, 1e-9), 2)
    report.final_loss = round(ema or 0.0, 4)
    model.eval()
    return tokenizer, model, report
