"""The reranker's scorer interface and the real cross-encoder.

A scorer turns (query, candidate) pairs into scores in three steps, so pairs from concurrent requests can share
a model batch: `prepare` (per request: tokenise, count tokens, detect truncation), `forward` (per micro-batch,
in the model executor: the forward pass over pairs that may come from several requests) and `finish` (per
request, cheap: e.g. fuse with the first-stage ranks). Higher scores are better.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winnow.models.fusion import linear_score_fuse
from winnow.models.loading import (ModelLoadError, Placement, check_model_dir, choose_placement, model_id,
                                   use_cpu_bf16)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One candidate as the core sees it. first_stage_rank is 1-based; 0 = unknown."""

    id: str
    text: str
    first_stage_rank: int = 0
    first_stage_score: float = 0.0


@dataclass(frozen=True, slots=True)
class PreparedPair:
    """A (query, candidate) pair ready for `forward`: a scorer-specific payload, its token cost, truncation."""

    payload: Any
    cost: int
    truncated: bool


class Scorer(ABC):
    """Scores (query, candidate) pairs; see the module docstring for the three steps."""

    name: str  # what it is, reported in responses: cross-encoder | late-interaction-maxsim-<fusion>-fusion
    model_id: str
    placement: Placement
    max_length: int

    @abstractmethod
    def prepare(self, query: str, candidates: Sequence[Candidate]) -> list[PreparedPair]:
        """Tokenise one request's pairs (cheap; runs in the pre-processing executor)."""

    @abstractmethod
    def forward(self, pairs: list[PreparedPair]) -> list[float]:
        """Raw scores for a micro-batch of pairs, possibly from several requests (runs in the model executor)."""

    def finish(self, candidates: Sequence[Candidate], raw: Sequence[float]) -> list[float]:
        """Per-request final scores from the raw pair scores (default: the raw scores)."""
        return list(raw)

    def close(self) -> None:
        """Release what the scorer holds (default: nothing)."""

    def score(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        """In-process convenience: prepare + forward + finish in one call (tests, benchmarks, studies)."""
        return self.finish(candidates, self.forward(self.prepare(query, candidates)))


class CrossEncoderScorer(Scorer):
    """A real cross-encoder: any Hugging Face AutoModelForSequenceClassification directory (ms-marco-MiniLM,
    bge-reranker, or one trained by `winnow train reranker`). One label: its logit is the score; two or more: the
    last label's log-odds.

    `fusion_weight` w < 1 joins the first stage: w * z(cross-encoder) + (1 - w) * z(first-stage score) over the
    request's candidates (`linear_score_fuse`); -1 takes the weight from the directory's winnow_reranker.json (chosen
    on held-out training queries), else 1 (the cross-encoder alone). A trained directory also caps max_length at its
    training length. Each micro-batch runs in length-sorted sub-batches of `sub_batch` pairs, each padded only to
    its own longest pair. `bf16`: auto (bf16 autocast on CPUs with native bf16, fp32 elsewhere; CUDA runs fp16),
    on, off."""

    name = "cross-encoder"

    def __init__(self, model_dir: str | Path, device: str = "auto", max_length: int = 512,
                 fusion_weight: float = -1.0, fusion_rrf_k: float = 100.0, sub_batch: int = 128,
                 bf16: str = "auto") -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from winnow.models.trained import read_manifest, served_fusion_weight

        path = check_model_dir(model_dir)
        self.placement = choose_placement(device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - one clear load error
            raise ModelLoadError(f"could not load a sequence-classification model from {path}: {exc}") from exc
        if self.placement.dtype == "float16":
            model.half()
        self._model = model.to(self.placement.device).eval()
        self._torch = torch
        manifest = read_manifest(path)
        limit = getattr(model.config, "max_position_embeddings", max_length) or max_length
        trained = int(manifest.get("max_length") or max_length)
        self.max_length = int(min(max_length, trained, limit, self.tokenizer.model_max_length or max_length))
        self.weight = served_fusion_weight(manifest, fusion_weight)
        self.rrf_k = fusion_rrf_k
        self.sub_batch = max(1, sub_batch)
        self.bf16 = use_cpu_bf16(self.placement, bf16)
        if self.weight < 1.0:
            self.name = f"cross-encoder-linear-score-fusion-w{self.weight:.2f}"
        self.model_id = model_id(path)
        self._pad = int(self.tokenizer.pad_token_id or 0)
        self._types = "token_type_ids" in self.tokenizer.model_input_names
        self._lock = threading.Lock()
        self._tok_lock = threading.Lock()  # fast tokenizers are not safe to call from two threads at once
        log.info("cross-encoder loaded", extra={"fields": {
            "model": self.model_id, "max_length": self.max_length, "fusion_weight": self.weight,
            "device": self.placement.device, "bf16": self.bf16, "trained": bool(manifest)}})

    def _encode(self, query: str, texts: list[str], limit: int) -> dict:
        with self._tok_lock:
            return self._encode_unlocked(query, texts, limit)

    def _encode_unlocked(self, query: str, texts: list[str], limit: int) -> dict:
        try:
            return self.tokenizer([query] * len(texts), texts, truncation="only_second", max_length=limit,
                                  verbose=False)
        except Exception:  # noqa: BLE001 - the query alone exceeds the limit: cut both sides
            return self.tokenizer([query] * len(texts), texts, truncation="longest_first", max_length=limit,
                                  verbose=False)

    def prepare(self, query: str, candidates: Sequence[Candidate]) -> list[PreparedPair]:
        texts = [c.text for c in candidates]
        probe = self._encode(query, texts, self.max_length + 1)
        ids = list(probe["input_ids"])
        types = list(probe.get("token_type_ids") or [[0] * len(x) for x in ids])
        long = [i for i, x in enumerate(ids) if len(x) > self.max_length]
        if long:
            cut = self._encode(query, [texts[i] for i in long], self.max_length)
            for j, i in enumerate(long):
                ids[i] = cut["input_ids"][j]
                types[i] = (cut.get("token_type_ids") or [[0] * len(cut["input_ids"][j])])[j]
        longset = set(long)
        return [PreparedPair((tuple(x), tuple(t)), len(x), i in longset) for i, (x, t) in enumerate(zip(ids, types))]

    def forward(self, pairs: list[PreparedPair]) -> list[float]:
        if not pairs:
            return []
        order = sorted(range(len(pairs)), key=lambda i: -pairs[i].cost)
        scores = [0.0] * len(pairs)
        with self._lock:
            for b in range(0, len(order), self.sub_batch):
                idx = order[b : b + self.sub_batch]
                for i, v in zip(idx, self._forward_padded([pairs[i] for i in idx])):
                    scores[i] = v
        return scores

    def finish(self, candidates: Sequence[Candidate], raw: Sequence[float]) -> list[float]:
        if self.weight >= 1.0:
            return list(raw)
        return linear_score_fuse(raw, [c.first_stage_rank for c in candidates], self.weight, self.rrf_k,
                                 [c.first_stage_score for c in candidates])

    def _forward_padded(self, pairs: list[PreparedPair]) -> list[float]:
        torch = self._torch
        width = max(p.cost for p in pairs)
        ids = torch.full((len(pairs), width), self._pad, dtype=torch.long)
        types = torch.zeros((len(pairs), width), dtype=torch.long)
        mask = torch.zeros((len(pairs), width), dtype=torch.long)
        for row, p in enumerate(pairs):
            x, t = p.payload
            ids[row, : len(x)] = torch.tensor(x)
            types[row, : len(t)] = torch.tensor(t)
            mask[row, : len(x)] = 1
        feats = {"input_ids": ids, "attention_mask": mask}
        if self._types:
            feats["token_type_ids"] = types
        feats = {k: v.to(self.placement.device) for k, v in feats.items()}
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            logits = self._model(**feats).logits.float()
        if logits.shape[-1] == 1:
            scores = logits[:, 0]
        else:
            logp = torch.log_softmax(logits, dim=-1)
            scores = logp[:, -1] - torch.logsumexp(logp[:, :-1], dim=-1)
        return scores.cpu().tolist()
