"""The manifest `winnow train reranker` writes beside a trained model (`winnow_reranker.json`), read by the scorer.

It says how the model should be served (its training `max_length`, the `fusion_weight` w for
w*z(cross-encoder) + (1-w)*z(first-stage score) and the `cascade_depth` (how many of the first stage's top
candidates it scores; 0 = all), both chosen on held-out training queries), and how it was trained. Any other Hugging
Face directory has none and is served as it is (the cross-encoder alone).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

MANIFEST = "winnow_reranker.json"


def read_manifest(model_dir: str | Path) -> dict:
    """The manifest of a trained directory, or {} for any other model directory (or an unreadable manifest)."""
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        log.warning("ignoring unreadable %s", path)
        return {}
    return data if isinstance(data, dict) else {}


def served_fusion_weight(manifest: dict, setting: float) -> float:
    """The weight of the cross-encoder in its fusion with the first stage: the setting when >= 0, else the
    manifest's, else 1 (the cross-encoder alone, e.g. a pre-trained ms-marco model)."""
    if setting >= 0:
        return float(setting)
    w = manifest.get("fusion_weight")
    return float(w) if isinstance(w, (int, float)) and 0 <= w <= 1 else 1.0


def served_cascade_depth(manifest: dict, setting: int) -> int:
    """How many of the previous stage's top candidates the scorer reads: the setting when >= 0 (0 = all), else
    the manifest's `cascade_depth` (chosen with the fusion weight on held-out training queries), else 0."""
    if setting >= 0:
        return int(setting)
    d = manifest.get("cascade_depth")
    return int(d) if isinstance(d, int) and not isinstance(d, bool) and d > 0 else 0


def check_cross_encoder_dir(model_dir: str | Path) -> Path:
    """A directory the cross-encoder scorer can load, or ModelLoadError saying what is wrong with it (checked
    before a cluster is started for it, so a typo fails in a second rather than after the start-up)."""
    from winnow.models.loading import ModelLoadError, check_model_dir

    path = check_model_dir(model_dir)
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise ModelLoadError(f"model directory {path} has no weights (*.safetensors or *.bin)")
    if not any((path / n).exists() for n in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        raise ModelLoadError(f"model directory {path} has no tokenizer files")
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path / 'config.json'} is not valid JSON: {exc}") from None
    archs = config.get("architectures") or []
    if archs and not any(str(a).endswith("ForSequenceClassification") for a in archs):
        raise ModelLoadError(f"model directory {path} is a {archs[0]}, not a sequence-classification model (a "
                             "cross-encoder); train one with `winnow train reranker`")
    return path
