"""The bi-encoder core: texts -> unit-length vectors (and per-token vectors for late interaction).

Split as infinity does: `prepare` (tokenise, count tokens, detect truncation; cheap, any thread),
`forward` (one padded forward pass over a batch; the expensive part, run by the micro-batcher in the model
executor) and `finish` (MRL: keep the leading `dimension` components, then re-normalise).

MRL dimensions: a request may ask for any of `allowed_dimensions` — by default 32, 64, 128, 256 (those below
the model's size) plus the full size. all-MiniLM-L6-v2 was not trained with a Matryoshka loss, so truncated
vectors work (unit length, cosine-comparable) but lose more quality than an MRL-trained model would.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from winnow.common.errors import InvalidArgument
from winnow.models.loading import (
    ModelLoadError,
    Placement,
    check_model_dir,
    choose_placement,
    default_model_dir,
    model_id,
)

log = logging.getLogger(__name__)

DEFAULT_MRL_DIMENSIONS = (32, 64, 128, 256)


@dataclass(frozen=True, slots=True)
class PreparedText:
    """A tokenised input: the ids fed to the model (after truncation) and whether it was cut."""

    input_ids: tuple[int, ...]
    truncated: bool

    @property
    def tokens(self) -> int:
        return len(self.input_ids)


def mrl_truncate(vectors: np.ndarray, dimension: int) -> np.ndarray:
    """Keep the leading `dimension` components of each row and re-normalise to unit length."""
    out = np.ascontiguousarray(vectors[:, :dimension], dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


class Encoder(ABC):
    """A bi-encoder behind the embedder and the late-interaction scorer."""

    model_id: str
    dimension: int
    max_seq_length: int
    placement: Placement
    allowed_dimensions: tuple[int, ...]

    @abstractmethod
    def prepare(self, texts: Sequence[str], kind: str = "document") -> list[PreparedText]:
        """Tokenise `texts` (kind: query | document, for models with per-kind prompts)."""

    @abstractmethod
    def forward(self, batch: Sequence[PreparedText]) -> np.ndarray:
        """One forward pass: float32 [len(batch), dimension], unit-length rows."""

    @abstractmethod
    def token_vectors(self, batch: Sequence[PreparedText]) -> list[np.ndarray]:
        """One forward pass: per input, its unit-length token vectors [tokens, dimension] (float32)."""

    def check_dimension(self, dimension: int) -> int:
        """The output dimension for a request's `dimension` (0 = full); InvalidArgument if not allowed."""
        if dimension == 0:
            return self.dimension
        if dimension not in self.allowed_dimensions:
            allowed = ", ".join(str(d) for d in self.allowed_dimensions)
            raise InvalidArgument(
                f"dimension {dimension} is not allowed for {self.model_id}; use 0 (full) or one of: {allowed}"
            )
        return dimension

    def finish(self, vectors: np.ndarray, dimension: int) -> np.ndarray:
        """MRL truncation + re-normalisation (a no-op copy at full dimension)."""
        if dimension == self.dimension:
            return np.asarray(vectors, dtype=np.float32)
        return mrl_truncate(vectors, dimension)

    def encode(self, texts: Sequence[str], kind: str = "document", dimension: int = 0) -> np.ndarray:
        """In-process convenience: pre + core + post in one call (tests, benchmarks, scripts)."""
        dim = self.check_dimension(dimension)
        return self.finish(self.forward(self.prepare(texts, kind)), dim)


def _allowed(full: int, mrl: Sequence[int]) -> tuple[int, ...]:
    return tuple(sorted({d for d in mrl if 0 < d < full} | {full}))


class SentenceTransformerEncoder(Encoder):
    """Any local sentence-transformers directory (or plain Hugging Face encoder dir: mean pooling is added)."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        device: str = "auto",
        mrl_dimensions: Sequence[int] = DEFAULT_MRL_DIMENSIONS,
        max_seq_length: int = 0,
    ) -> None:
        import torch

        from winnow.models.lite import load_lite

        default = default_model_dir()
        path = check_model_dir(model_dir or default)
        self.placement = choose_placement(device)
        self._path = path
        try:
            # Transformer + Pooling directories (MiniLM) skip sentence-transformers' ~200 MB of imports.
            model = load_lite(path, self.placement.device)
            if model is None:
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(str(path), device=self.placement.device, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure is reported as one clear error
            raise ModelLoadError(f"could not load a sentence-transformers model from {path}: {exc}") from exc
        if self.placement.dtype == "float16":
            model.half()
        model.eval()
        self._torch = torch
        self._model = model
        self.tokenizer = model.tokenizer
        if max_seq_length > 0:
            model.max_seq_length = max_seq_length
        self.max_seq_length = int(model.max_seq_length or self.tokenizer.model_max_length)
        dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dimension = int(dim_of())
        self.allowed_dimensions = _allowed(self.dimension, mrl_dimensions)
        self.model_id = model_id(path, default)
        self._prompts = dict(getattr(model, "prompts", {}) or {})
        self._inputs = set(self.tokenizer.model_input_names)
        self._pad = int(self.tokenizer.pad_token_id or 0)
        self._lock = threading.Lock()  # one forward at a time per model (the batcher's executor ensures it too)
        # Fast tokenizers mutate their truncation state per call; two threads at once raise "Already borrowed".
        self._tok_lock = threading.Lock()
        log.info(
            "encoder loaded",
            extra={"fields": {"model": self.model_id, "device": self.placement.device, "dtype": self.placement.dtype,
                              "dimension": self.dimension, "max_seq_length": self.max_seq_length}},
        )

    @property
    def sentence_transformer(self):
        """A SentenceTransformer of the same directory (benchmarks compare against its own encode()); loaded on
        first use when the encoder runs the lite path."""
        from winnow.models.lite import LiteModel

        if isinstance(self._model, LiteModel):
            from sentence_transformers import SentenceTransformer

            st = SentenceTransformer(str(self._path), device=self.placement.device, local_files_only=True)
            st.max_seq_length = self.max_seq_length
            self._model = st
        return self._model

    def prepare(self, texts: Sequence[str], kind: str = "document") -> list[PreparedText]:
        if not texts:
            return []
        prompt = self._prompts.get(kind, "")
        texts = [prompt + t for t in texts] if prompt else list(texts)
        limit = self.max_seq_length
        # Tokenise to limit+1: a text is truncated iff it reaches limit+1; re-tokenise those at the limit so the
        # tokenizer places its own end token.
        with self._tok_lock:
            probe = self.tokenizer(texts, truncation=True, max_length=limit + 1, verbose=False)["input_ids"]
            long = [i for i, ids in enumerate(probe) if len(ids) > limit]
            if long:
                cut = self.tokenizer([texts[i] for i in long], truncation=True, max_length=limit)["input_ids"]
                for i, ids in zip(long, cut):
                    probe[i] = ids
        longset = set(long)
        return [PreparedText(tuple(ids), i in longset) for i, ids in enumerate(probe)]

    def _features(self, batch: Sequence[PreparedText]) -> dict:
        torch = self._torch
        width = max(p.tokens for p in batch)
        ids = torch.full((len(batch), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, p in enumerate(batch):
            ids[row, : p.tokens] = torch.tensor(p.input_ids, dtype=torch.long)
            mask[row, : p.tokens] = 1
        feats = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feats["token_type_ids"] = torch.zeros_like(ids)
        dev = self.placement.device
        return {k: v.to(dev) for k, v in feats.items()}

    def _run_model(self, batch: Sequence[PreparedText]) -> dict:
        with self._lock, self._torch.inference_mode():
            return self._model(self._features(batch))

    def forward(self, batch: Sequence[PreparedText]) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = self._run_model(batch)
        emb = self._torch.nn.functional.normalize(out["sentence_embedding"].float(), dim=-1)
        return emb.cpu().numpy()

    def token_vectors(self, batch: Sequence[PreparedText]) -> list[np.ndarray]:
        if not batch:
            return []
        out = self._run_model(batch)
        tok = self._torch.nn.functional.normalize(out["token_embeddings"].float(), dim=-1).cpu().numpy()
        return [tok[i, : p.tokens] for i, p in enumerate(batch)]

    def special_ids(self) -> set[int]:
        """Token ids of the tokenizer's special tokens ([CLS], [SEP], [PAD], ...)."""
        return set(self.tokenizer.all_special_ids)


class FakeEncoder(Encoder):
    """A deterministic, model-free encoder for fast unit tests: hashed bag of words, unit length.

    Texts sharing words get similar vectors, so ranking tests mean something; never use it for quality figures.
    """

    def __init__(self, dimension: int = 64, max_seq_length: int = 16,
                 mrl_dimensions: Sequence[int] = (8, 16, 32)) -> None:
        self.dimension = dimension
        self.max_seq_length = max_seq_length
        self.allowed_dimensions = _allowed(dimension, mrl_dimensions)
        self.model_id = f"fake-hash-bow-{dimension}@0"
        self.placement = Placement("cpu", "float32")
        self.calls = 0

    @staticmethod
    def _tok(word: str) -> int:
        import zlib

        return zlib.crc32(word.lower().strip(".,;:!?").encode()) & 0x7FFFFFFF

    def prepare(self, texts: Sequence[str], kind: str = "document") -> list[PreparedText]:
        out = []
        for t in texts:
            ids = [self._tok(w) for w in t.split()] or [0]
            out.append(PreparedText(tuple(ids[: self.max_seq_length]), len(ids) > self.max_seq_length))
        return out

    def _vec(self, token: int) -> np.ndarray:
        return np.random.default_rng(token).standard_normal(self.dimension).astype(np.float32)

    def token_vectors(self, batch: Sequence[PreparedText]) -> list[np.ndarray]:
        self.calls += 1
        out = []
        for p in batch:
            m = np.stack([self._vec(t) for t in p.input_ids])
            out.append(m / np.linalg.norm(m, axis=1, keepdims=True))
        return out

    def forward(self, batch: Sequence[PreparedText]) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vecs = np.stack([t.sum(axis=0) for t in self.token_vectors(batch)])
        return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
