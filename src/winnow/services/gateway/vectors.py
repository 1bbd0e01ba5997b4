"""Caller-supplied vectors ("bring your own vectors"): checked, L2-normalised and hashed. No gRPC in here.

A collection holds vectors of one model at one dimension (its `VectorSpace`). A vector a caller sends is accepted
only when its length is that dimension, every component is a finite number and it is not the zero vector; it is
then normalised to unit length, because the shards score by inner product on unit vectors (cosine similarity, what
bulk thresholds in [-1, 1] mean). A caller naming another model than the collection's is refused: vectors from two
models live in unrelated spaces, and mixing them returns nonsense without an error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from winnow.common.errors import InvalidArgument


@dataclass(frozen=True)
class VectorSpace:
    """What the collection's vectors are: the model that made them and their dimension."""

    model: str
    dimension: int
    embeddable: bool = True  # the embedder makes vectors of this space (text-only documents and queries work)

    @property
    def known(self) -> bool:
        return self.dimension > 0


def space_of(collection_model: str, embedder_model: str, dimension: int) -> VectorSpace:
    """The collection's space: its configured model ("" = the embedder's) at the shards' dimension."""
    if not collection_model or (embedder_model and collection_model in (embedder_model,
                                                                        embedder_model.split("@")[0])):
        return VectorSpace(embedder_model, dimension, embeddable=bool(embedder_model))
    return VectorSpace(collection_model, dimension, embeddable=False)


def check_model(model: str, space: VectorSpace, field: str) -> None:
    """`model` ("" = the collection's own) must be the collection's model: its full id (`name@hash`) or name."""
    if model and space.model and model not in (space.model, space.model.split("@")[0]):
        raise InvalidArgument(
            f"{field}={model!r}, but this collection holds vectors of {space.model!r}: vectors from different "
            f"models are not comparable; send vectors of {space.model!r} (or leave {field} empty)",
            field=field, reason="WRONG_VECTOR_MODEL",
        )


def unit_vector(values: Sequence[float] | np.ndarray, space: VectorSpace, field: str) -> np.ndarray:
    """A float32 unit vector from a caller's components, or InvalidArgument naming `field` and the fix."""
    if not space.known:
        raise InvalidArgument(f"{field}: the collection's dimension is not known yet (no shard answered); retry",
                              field=field, reason="DIMENSION_UNKNOWN")
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != space.dimension:
        raise InvalidArgument(
            f"{field} has {arr.size} components; this collection's vectors ({space.model or 'its model'}) have "
            f"{space.dimension}", field=field, reason="WRONG_DIMENSION",
        )
    finite = np.isfinite(arr)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise InvalidArgument(f"{field}[{i}] is {arr[i]}: every component must be a finite number",
                              field=f"{field}[{i}]", reason="BAD_VECTOR")
    norm = float(np.linalg.norm(arr))
    if norm == 0.0 or not np.isfinite(norm):
        raise InvalidArgument(f"{field} is the zero vector: it has no direction to search or store", field=field,
                              reason="BAD_VECTOR")
    unit = (arr / norm).astype(np.float32)
    if not np.isfinite(unit).all():  # components beyond float32's range
        raise InvalidArgument(f"{field} has components beyond float32's range", field=field, reason="BAD_VECTOR")
    return unit


def digest(vector: np.ndarray | None) -> str:
    """A short stable hash of a (normalised) vector, for cache keys: the vector itself is never keyed in full."""
    if vector is None:
        return ""
    return hashlib.blake2b(np.ascontiguousarray(vector, dtype="<f4").tobytes(), digest_size=16).hexdigest()
