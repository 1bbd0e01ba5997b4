"""A learning-to-rank model: what `winnow train ltr` writes and the gateway's final stage serves.

One JSON file holds everything: the kind (`linear`, or `lightgbm` when that package is installed), the features
it reads (`winnow.models.ltr_features`), the normalisation applied to them (per feature: (x - mean) / scale, from
the training candidates), the linear weights or the LightGBM model text, the candidate depth it was trained at,
the training report, and `model_id`: a hash over everything that decides the order, so a cache keyed on it never
mixes two models. `load` refuses a file that is not exactly that (the message says what is wrong); `save` writes
a temporary sibling and renames it into place.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from winnow.models.ltr_features import RankedCandidate, check_names, feature_matrix

FORMAT = "winnow-ltr"
VERSION = 1
KINDS = ("linear", "lightgbm")


class LtrModelError(ValueError):
    """An LTR model file that cannot be served: missing, unreadable, corrupt, or needing an absent package."""


def lightgbm_available() -> bool:
    """True when the optional `lightgbm` package imports (pip install 'winnow[ltr]')."""
    try:
        import lightgbm  # noqa: F401
    except (ImportError, OSError):  # OSError: its native library (libgomp) failing to load
        return False
    return True


@dataclass
class LtrModel:
    """A trained ranker over one query's candidate window; higher scores rank first."""

    kind: str
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray | None = None  # linear
    booster: str = ""  # lightgbm: the model text (`Booster.model_to_string`)
    depth: int = 0  # candidates per query it was trained on (serve it at that window)
    report: dict = field(default_factory=dict)
    _booster: Any = field(default=None, repr=False, compare=False)

    @property
    def model_id(self) -> str:
        """12 hex digits over the kind, features, normalisation and parameters (not the report)."""
        return hashlib.sha256(json.dumps(self._decisive(), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        """What responses report and caches key on: `ltr-linear@<id>`."""
        return f"ltr-{self.kind}@{self.model_id}"

    @property
    def needs_reranker(self) -> bool:
        return "reranker" in self.features

    def _decisive(self) -> dict:
        return {"kind": self.kind, "features": list(self.features),
                "normalisation": {"mean": [float(x) for x in self.mean], "scale": [float(x) for x in self.scale]},
                "weights": None if self.weights is None else [float(x) for x in self.weights],
                "lightgbm_model": self.booster}

    def normalised(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale

    def score_matrix(self, x: np.ndarray) -> np.ndarray:
        """Scores of rows of raw features (columns in `features` order)."""
        if x.shape[0] == 0:
            return np.zeros(0)
        z = self.normalised(x)
        if self.kind == "linear":
            return z @ self.weights
        if self._booster is None:
            self._booster = _booster_from_text(self.booster)
        return np.asarray(self._booster.predict(z, num_threads=1), dtype=np.float64)

    def score(self, candidates: Sequence[RankedCandidate]) -> np.ndarray:
        """One score per candidate of one query's window."""
        return self.score_matrix(feature_matrix(candidates, self.features))

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, **self._decisive(), "depth": self.depth,
                "model_id": self.model_id, "report": self.report}


def _booster_from_text(text: str):
    try:
        import lightgbm
    except (ImportError, OSError) as exc:
        raise LtrModelError("this is a LightGBM model and the lightgbm package is not installed (pip install "
                            f"'winnow[ltr]'): {exc}") from None
    try:
        return lightgbm.Booster(model_str=text)
    except Exception as exc:  # noqa: BLE001 - lightgbm raises its own error types for a bad model text
        raise LtrModelError(f"the LightGBM model text does not load: {exc}") from None


def _vector(d: dict, key: str, n: int) -> np.ndarray:
    v = d.get(key)
    if not isinstance(v, list) or len(v) != n or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                         and math.isfinite(x) for x in v):
        raise LtrModelError(f'"{key}" must be a list of {n} finite numbers (one per feature)')
    return np.array(v, dtype=np.float64)


def from_json(d: Any) -> LtrModel:
    """The model a file's JSON describes (LtrModelError on any defect)."""
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise LtrModelError(f'not a Winnow LTR model (no "format": "{FORMAT}"); write one with `winnow train ltr`')
    if d.get("version") != VERSION:
        raise LtrModelError(f"model format version {d.get('version')!r}; this Winnow reads version {VERSION}")
    kind = d.get("kind")
    if kind not in KINDS:
        raise LtrModelError(f'"kind" must be one of {", ".join(KINDS)}, not {kind!r}')
    names = d.get("features")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise LtrModelError('"features" must be a list of feature names')
    try:
        check_names(names)
    except ValueError as exc:
        raise LtrModelError(f'"features": {exc}') from None
    norm = d.get("normalisation")
    if not isinstance(norm, dict):
        raise LtrModelError('"normalisation" must be an object with "mean" and "scale"')
    mean, scale = _vector(norm, "mean", len(names)), _vector(norm, "scale", len(names))
    if (scale <= 0).any():
        raise LtrModelError('"scale" values must be > 0')
    depth = d.get("depth", 0)
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
        raise LtrModelError('"depth" must be a non-negative integer')
    model = LtrModel(kind, tuple(names), mean, scale, depth=depth,
                     report=d.get("report") if isinstance(d.get("report"), dict) else {})
    if kind == "linear":
        model.weights = _vector(d, "weights", len(names))
    else:
        text = d.get("lightgbm_model")
        if not isinstance(text, str) or not text.strip():
            raise LtrModelError('"lightgbm_model" must hold the LightGBM model text')
        model.booster = text
        model._booster = _booster_from_text(text)
        if model._booster.num_feature() != len(names):
            raise LtrModelError(f"the LightGBM model reads {model._booster.num_feature()} features; the file names "
                                f"{len(names)}")
    if d.get("model_id") != model.model_id:
        raise LtrModelError(f'"model_id" {d.get("model_id")!r} does not match the content ({model.model_id}): the '
                            "file was edited or damaged; train it again")
    return model


def load(path: str | Path) -> LtrModel:
    """Read and check a model file; LtrModelError names the file and what is wrong with it."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LtrModelError(f"LTR model file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LtrModelError(f"LTR model file {path}: cannot read it: {exc}") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LtrModelError(f"LTR model file {path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    try:
        return from_json(data)
    except LtrModelError as exc:
        raise LtrModelError(f"LTR model file {path}: {exc}") from None


def save(model: LtrModel, path: str | Path, overwrite: bool = False) -> None:
    """Write the model file atomically (a temporary sibling renamed onto `path`)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        tmp.write_text(json.dumps(model.to_json(), indent=1, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
