"""Typed settings of the reranker service (env prefix WINNOW_RERANKER_, same names as CLI flags)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from winnow.common.settings import ModelServiceSettings

LATE_INTERACTION = "late-interaction"
CROSS_ENCODER = "cross-encoder"


class RerankerSettings(ModelServiceSettings):
    """Reranker: the scorer, its model, where it runs, and the micro-batcher's budgets."""

    model_config = SettingsConfigDict(env_prefix="WINNOW_RERANKER_")

    scorer: str = Field(
        LATE_INTERACTION, pattern=f"^({LATE_INTERACTION}|{CROSS_ENCODER})$",
        description="late-interaction (offline default: MaxSim over the encoder's token vectors, fused with the "
        "first-stage rank) or cross-encoder (a sequence-classification model in model_dir).",
    )
    model_dir: str = Field(
        "", description="Model directory. cross-encoder: a Hugging Face sequence-classification model (required). "
        "late-interaction: a sentence-transformers encoder; empty = the packaged all-MiniLM-L6-v2.",
    )
    max_length: int = Field(512, ge=8, description="cross-encoder: most tokens per (query, candidate) pair; "
                            "candidates are cut to fit and reported as truncated. Late interaction uses the "
                            "encoder's max_seq_length (256 for all-MiniLM-L6-v2).")
    ce_fusion_weight: float = Field(
        -1.0, ge=-1, le=1, description="cross-encoder: weight w of its score in w*z(cross-encoder) + (1-w)*z(first-"
        "stage score); -1 = the model directory's own (winnow_reranker.json, chosen on held-out training queries by "
        "`winnow train reranker`), else 1 (the cross-encoder alone).",
    )
    ce_sub_batch: int = Field(128, ge=1, description="cross-encoder: most pairs per forward pass; a micro-batch is "
                              "run in length-sorted sub-batches of this size, each padded to its own longest pair. "
                              "Smaller helps only when candidate lengths vary widely: on SciFact (almost every "
                              "candidate reaches 256 tokens) one pass over 40 pairs measured 1.23x faster than "
                              "16-pair sub-batches (studies/cross_encoder_speed.py).")
    bf16: str = Field("auto", pattern="^(auto|on|off)$", description="cross-encoder on CPU: bf16 autocast. auto = "
                      "only where the CPU has native bf16 (AVX512-BF16/AMX); without it bf16 measured 1.5-4x slower "
                      "than fp32 here (docs/models.md).")
    cascade_depth: int = Field(
        -1, ge=-1, description="Cascade: when > 0, only the top cascade_depth candidates of the previous stage reach "
        "the scorer (the rest follow in that stage's order): e.g. window 80 -> cross-encoder on the top 30. "
        "0 = every candidate is scored. -1 = the model directory's own (winnow_reranker.json, chosen with the "
        "fusion weight on held-out training queries by `winnow train reranker`), else 0. A request's "
        "rerank_depth overrides it.",
    )
    cascade_cheap: str = Field(
        "", pattern=f"^({LATE_INTERACTION})?$", description="Cascade: a cheap stage run on every candidate before "
        "the cascade cut ('' = the first-stage order; late-interaction = MaxSim over the packaged MiniLM, with the "
        "fusion_* and token_store_dir settings).",
    )
    max_candidates: int = Field(512, ge=1, description="Most candidates in one Rerank request.")
    # device, threads, max_wait_ms and max_queue: ModelServiceSettings; the two budgets below differ for pairs.
    max_batch_size: int = Field(
        128, ge=1, description="Micro-batcher: most pairs in one batch (128 holds the gateway's 80-candidate window)."
    )
    max_batch_tokens: int = Field(
        32768, ge=1, description="Micro-batcher: token budget per batch (longest pair x pairs)."
    )
    fusion: str = Field(
        "linear-score", pattern="^(linear-score|linear|rrf)$",
        description="late-interaction: how MaxSim joins the first stage. linear-score: w*z(MaxSim) + "
        "(1-w)*z(first_stage_score) (falls back to linear when the scores are missing or all equal); linear: "
        "w*z(MaxSim) + (1-w)*z(1/(k+rank)); rrf: w/(k+MaxSim rank) + (1-w)/(k+rank). See docs/models.md.",
    )
    fusion_weight: float = Field(
        0.6, ge=0, le=1, description="late-interaction: weight w of MaxSim in the fusion (1 - w goes to the "
        "first stage). 0.6 with linear-score was best on SciFact train against the gateway's convex first stage "
        "(studies/reranker_retune.py); see docs/models.md.",
    )
    fusion_rrf_k: float = Field(
        100.0, gt=0, description="late-interaction: the constant k in 1/(k + rank), for linear and rrf (and "
        "linear-score's fallback). 100 with linear, w=0.4 was best on train against the old RRF first stage.",
    )
    skip_special_tokens: bool = Field(
        False, description="late-interaction: leave [CLS]/[SEP] out of MaxSim (slightly worse on SciFact train).",
    )
    token_store_dir: str = Field(
        "", description="late-interaction: directory of a persistent store of document token vectors (one "
        "append-only file per model); warmed into memory at start, so a restart has no cold cache. Empty = memory "
        "only. The local cluster puts it under its data directory.",
    )
    cache_mb: int = Field(1024, ge=0, description="late-interaction: memory for cached document token vectors "
                          "(fp16, LRU by doc id + text hash), in MiB.")
