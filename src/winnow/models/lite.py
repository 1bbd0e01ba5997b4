"""A plain sentence-transformers directory (Transformer -> Pooling [-> Normalize]) run with transformers alone.

Importing sentence-transformers costs about 200 MB of resident memory per process (it pulls in some 2,400 more
modules: scikit-learn, scipy, PIL, ...), paid by the embedder and the reranker each. For the common layout, which
all-MiniLM-L6-v2 has, the model is only a transformer plus a pooling step, so `load_lite` loads it with
`transformers.AutoModel` and pools here, with the same arithmetic as sentence-transformers' Pooling module
(vectors equal to float rounding; tests/unit/test_lite_encoder.py). Any other layout (Dense layers, custom modules,
prompts with pooling exclusions) returns None and the caller uses sentence-transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_T, _P, _N = ("sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
              "sentence_transformers.models.Normalize")
_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}


def lite_layout(path: Path) -> dict[str, Any] | None:
    """{"pooling", "max_seq_length", "prompts"} when `path` is Transformer + Pooling (+ Normalize); else None."""
    try:
        mods = json.loads((path / "modules.json").read_text())
        types = [m["type"] for m in mods]
        if types not in ([_T, _P], [_T, _P, _N]) or mods[0].get("path", "") not in ("", "."):
            return None
        pool = json.loads((path / mods[1]["path"] / "config.json").read_text())
        on = [mode for key, mode in _MODES.items() if pool.get(key)]
        others = [k for k, v in pool.items() if k.startswith("pooling_mode_") and v and k not in _MODES]
        if len(on) != 1 or others or pool.get("include_prompt") is False:
            return None
        st = path / "sentence_bert_config.json"
        bert = json.loads(st.read_text()) if st.is_file() else {}
        if bert.get("do_lower_case"):
            return None  # sentence-transformers lower-cases before the tokenizer: leave that to it
        cfg = path / "config_sentence_transformers.json"
        prompts = (json.loads(cfg.read_text()) if cfg.is_file() else {}).get("prompts") or {}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {"pooling": on[0], "max_seq_length": int(bert.get("max_seq_length") or 0), "prompts": prompts}


class LiteModel:
    """What the encoder uses of a SentenceTransformer: tokenizer, max_seq_length, prompts, the embedding
    dimension, half()/eval(), and a call returning token and sentence embeddings (not normalised)."""

    def __init__(self, path: Path, device: str, layout: dict[str, Any]) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.auto_model = AutoModel.from_pretrained(str(path), local_files_only=True).to(device)
        self.max_seq_length = layout["max_seq_length"] or int(self.tokenizer.model_max_length)
        self.prompts = dict(layout["prompts"])
        self.pooling = layout["pooling"]

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.auto_model.config.hidden_size)

    def half(self) -> "LiteModel":
        self.auto_model.half()
        return self

    def eval(self) -> "LiteModel":
        self.auto_model.eval()
        return self

    def __call__(self, features: dict) -> dict:
        torch = self._torch
        tokens = self.auto_model(**features, return_dict=True).last_hidden_state
        mask = features["attention_mask"].unsqueeze(-1).to(tokens.dtype)
        if self.pooling == "mean":
            sentence = (tokens * mask).sum(1) / torch.clamp(mask.sum(1), min=1e-9)
        elif self.pooling == "cls":
            sentence = tokens[:, 0]
        else:
            sentence = tokens.masked_fill(mask == 0, -1e9).max(1).values
        return {"token_embeddings": tokens, "sentence_embedding": sentence, "attention_mask": features["attention_mask"]}


def load_lite(path: Path, device: str) -> LiteModel | None:
    layout = lite_layout(path)
    return LiteModel(path, device, layout) if layout is not None else None
