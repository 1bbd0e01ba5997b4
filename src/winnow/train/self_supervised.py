"""Training pairs from the corpus alone (`winnow train reranker --self-supervised`): no judgments needed.

Each sampled document yields one pseudo-query and the document with that query taken out as its positive:
- **title → body** where the document has a title of 3+ words and a body of 12+ words (the body is shown without
  the title, and so are the negatives, so "has no title" cannot become a shortcut);
- **sentence → rest** (inverse cloze): one sentence of 4-40 words taken out of a body of 2+ sentences;
- **span → rest**: for bodies without sentence punctuation (lists, logs, code, other scripts), a contiguous span
  of about a quarter of the words (4-24), if the body has 16+ words.
Titled documents use title or sentence with equal chance. Shorter documents are skipped. Negatives are the cluster's
first stage run with the pseudo-query, with guards against false negatives: the source document, near-duplicates
of it (dense cosine >= 0.95), candidates containing the pseudo-query verbatim, and candidates the dense model finds
almost as close to the query as the source (>= 0.95 x) are never negatives.

The fusion weight is chosen on held-out pseudo-queries against a first stage that indexes their sources with the
pseudo-query removed (so the first stage cannot just find the copied text), the same way as for judgments.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

log = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")
TITLE_VIEW, FULL_VIEW = "body", "full"


@dataclass(frozen=True)
class PseudoQuery:
    """A query made from document `row`, the document's text with it removed, and how documents are shown."""

    row: int
    kind: str  # title | sentence | span
    query: str
    positive: str
    view: str  # body (title → body: every document shown without its title) | full


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def pseudo_query(row: int, title: str, body: str, rng: random.Random) -> PseudoQuery | None:
    """One pseudo-query for a document, or None when it is too short to cut."""
    from winnow.ingest import document_text

    title, body = title.strip(), body.strip()
    words = body.split()
    options = []
    if len(title.split()) >= 3 and len(words) >= 12:
        options.append("title")
    sents = sentences(body)
    eligible = [i for i, s in enumerate(sents) if 4 <= len(s.split()) <= 40]
    if len(sents) >= 2 and eligible:
        options.append("sentence")
    if not options and len(words) >= 16:
        options.append("span")
    if not options:
        return None
    kind = rng.choice(options)
    if kind == "title":
        return PseudoQuery(row, kind, title, body, TITLE_VIEW)
    if kind == "sentence":
        i = rng.choice(eligible)
        rest = " ".join(s for j, s in enumerate(sents) if j != i)
        return PseudoQuery(row, kind, sents[i], document_text(title, rest), FULL_VIEW)
    n = max(4, min(24, len(words) // 4))
    start = rng.randrange(0, len(words) - n + 1)
    rest = " ".join(words[:start] + words[start + n :])
    return PseudoQuery(row, kind, " ".join(words[start : start + n]), document_text(title, rest), FULL_VIEW)


def make_pseudo_queries(titles: Sequence[str], bodies: Sequence[str], n: int, seed: int) -> list[PseudoQuery]:
    """Up to `n` pseudo-queries from documents drawn by seed (one per document)."""
    rng = random.Random(seed)
    rows = list(range(len(bodies)))
    rng.shuffle(rows)
    out = []
    for r in rows:
        if len(out) >= n:
            break
        pq = pseudo_query(r, titles[r], bodies[r], rng)
        if pq is not None:
            out.append(pq)
    return out


def guarded_pool(pq: PseudoQuery, hits, vectors: np.ndarray, qvec: np.ndarray, shown: Sequence[str],
                 depth: int, guard: float) -> list[int]:
    """Rows usable as negatives for a pseudo-query (see the module docstring for the guards)."""
    src = vectors[pq.row]
    limit = guard * float(src @ qvec)
    needle = _norm(pq.query)
    pool = []
    for h in hits[:depth]:
        if h.row == pq.row or h.dense >= limit or float(vectors[h.row] @ src) >= guard:
            continue
        text = shown[h.row]
        if not text.strip() or needle in _norm(text):
            continue
        pool.append(h.row)
    return pool


def run_self_supervised(args, corpus, base, bars, t0: float) -> int:
    import torch

    from winnow.ingest import document_text
    from winnow.train.first_stage import FirstStage, encode_sorted
    from winnow.train.judgments import TrainInputError
    from winnow.train.pipeline import build_first_stage, finish, train_config
    from winnow.train.reranker import MiningConfig, RunResult, choose_weight, score_texts
    from winnow.train.trainer import Example, train

    ids = list(corpus)
    titles = [d.title for d in corpus.values()]
    bodies = [d.text for d in corpus.values()]
    full = [document_text(d.title, d.text) for d in corpus.values()]
    views = {FULL_VIEW: full, TITLE_VIEW: bodies}
    n = args.max_queries or 2000
    mining = MiningConfig(depth=args.depth, holdout=args.holdout, fusion_depth=args.fusion_depth)
    pqs = make_pseudo_queries(titles, bodies, n + mining.holdout, args.seed)
    if len(pqs) < 10:
        raise TrainInputError(f"dataset {args.dataset}: only {len(pqs)} documents are long enough to make "
                              "pseudo-queries from (need 10+ documents of 16+ words)")
    held_n = min(mining.holdout, len(pqs) // 5)
    held, pqs = pqs[:held_n], pqs[held_n:]
    kinds = {k: sum(p.kind == k for p in pqs) for k in ("title", "sentence", "span")}
    timings = {}
    started = time.perf_counter()
    fs = build_first_stage(args, full, bars)
    timings["first_stage_index"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    hits = fs.search([p.query for p in pqs], progress=bars("mine negatives", len(pqs)))
    qvecs = encode_sorted(fs.encoder, [p.query for p in pqs], "query")
    examples = []
    for pq, qh, qv in zip(pqs, hits, qvecs):
        shown = views[pq.view]
        pool = guarded_pool(pq, qh, fs.vectors, qv, shown, mining.depth, mining.guard)
        examples.append(Example(pq.query, pq.positive, tuple(shown[r] for r in pool)))
    held_runs = None
    if held:
        # A first stage over the corpus with each held-out source replaced by its positive (query removed).
        altered = list(full)
        for p in held:
            altered[p.row] = document_text(titles[p.row], p.positive) if p.view == TITLE_VIEW else p.positive
        vecs = fs.vectors.copy()
        vecs[[p.row for p in held]] = encode_sorted(fs.encoder, [altered[p.row] for p in held], "document")
        held_fs = FirstStage(altered, fs.encoder, vectors=vecs)
        held_hits = held_fs.search([p.query for p in held])
        held_runs = list(zip(held, held_hits))
    timings["mine"] = round(time.perf_counter() - started, 1)
    del fs.encoder
    config = train_config(args)
    log.info("self-supervised: %d pseudo-queries (%s), %d held out", len(examples), kinds, len(held))
    tokenizer, model, report = train(examples, base, config, progress=lambda k: bars("train", k))
    timings["train"] = report.seconds
    result = RunResult(source="self-supervised", base_model=str(base), train_queries=len(pqs),
                       examples=len(examples), config=asdict(config), mining={**asdict(mining), "kinds": kinds},
                       training=asdict(report), timings_s=timings)

    def held_fn():
        runs = []
        bar = bars("choose fusion", len(held_runs))
        with torch.inference_mode():
            for p, qh in held_runs:
                top = list(qh[: mining.fusion_depth])
                shown = [p.positive if h.row == p.row else views[p.view][h.row] for h in top]
                ce = score_texts(tokenizer, model, p.query, shown, config.max_length)
                runs.append(({ids[p.row]: 1}, [ids[h.row] for h in top], np.array(ce),
                             np.array([h.score for h in top])))
                bar(1)
        out = choose_weight(runs)
        out.update(held_out_queries=len(runs), depth=mining.fusion_depth, judged_by="held-out pseudo-queries")
        return out

    return finish(args, tokenizer, model, result, bars, held_fn if held_runs else None, t0)
