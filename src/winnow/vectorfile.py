"""Reading callers' own vectors for the CLI (`--vector-file`): .npy, JSON, or whitespace/comma-separated text.

One vector (a query) or a matrix, one row per document, in the order of the corpus file. Finiteness and
dimension are the gateway's to check (it knows the collection); this only parses, with errors naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class VectorFileError(ValueError):
    pass


def read_vectors(path: str | Path) -> np.ndarray:
    """A float32 array of shape [n, d] (a single vector reads as n = 1)."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            raw = path.read_text()
            try:
                arr = np.asarray(json.loads(raw), dtype=np.float32)
            except json.JSONDecodeError:
                rows = [line.replace(",", " ").split() for line in raw.splitlines() if line.strip()]
                arr = np.asarray([[float(x) for x in r] for r in rows], dtype=np.float32)
    except (OSError, ValueError, TypeError) as exc:
        raise VectorFileError(f"{path}: cannot read vectors ({exc})") from None
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise VectorFileError(f"{path}: expected a vector or a matrix (one row per document), got shape {arr.shape}")
    return arr


def read_query_vector(path: str | Path) -> np.ndarray:
    arr = read_vectors(path)
    if arr.shape[0] != 1:
        raise VectorFileError(f"{path}: holds {arr.shape[0]} vectors; a query takes one")
    return arr[0]
