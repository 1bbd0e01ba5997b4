"""Embedder and reranker settings: env prefixes, CLI flags, validation, documented fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from winnow.services.embedder.settings import EmbedderSettings
from winnow.services.reranker.settings import CROSS_ENCODER, LATE_INTERACTION, RerankerSettings


@pytest.mark.parametrize("cls", [EmbedderSettings, RerankerSettings])
def test_every_field_documented(cls) -> None:
    for name, field in cls.model_fields.items():
        assert field.description, f"{cls.__name__}.{name} has no description"


def test_embedder_env_and_cli(monkeypatch) -> None:
    monkeypatch.setenv("WINNOW_EMBEDDER_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("WINNOW_EMBEDDER_DEVICE", "cpu")
    s = EmbedderSettings.from_args(["--max-wait-ms", "5", "--port", "0", "--mrl-dimensions", "[64,128]"])
    assert (s.max_batch_size, s.device, s.max_wait_ms, s.mrl_dimensions) == (8, "cpu", 5.0, [64, 128])
    assert s.model_dir == ""  # empty = packaged all-MiniLM-L6-v2
    cli = EmbedderSettings.from_args(["--max-batch-size", "2"])
    assert cli.max_batch_size == 2  # CLI wins over env


def test_reranker_defaults_and_env(monkeypatch) -> None:
    s = RerankerSettings()
    assert s.scorer == LATE_INTERACTION and s.device == "auto"
    monkeypatch.setenv("WINNOW_RERANKER_SCORER", CROSS_ENCODER)
    monkeypatch.setenv("WINNOW_RERANKER_MODEL_DIR", "/models/bge")
    s = RerankerSettings()
    assert s.scorer == CROSS_ENCODER and s.model_dir == "/models/bge"


def test_invalid_values_rejected() -> None:
    with pytest.raises(ValidationError):
        EmbedderSettings(device="tpu")
    with pytest.raises(ValidationError):
        RerankerSettings(scorer="maxsim")
    with pytest.raises(ValidationError):
        RerankerSettings(fusion_weight=1.5)
    with pytest.raises(ValidationError):
        EmbedderSettings(max_batch_size=0)


def test_threads_follow_the_cpu_limit_not_the_node(tmp_path):
    from winnow.common.cpus import _cgroup_cpus, available_cpus

    mine = available_cpus(tmp_path / "none")  # no cgroup files: the affinity mask alone
    assert mine >= 1
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")  # a 1.5-CPU limit
    assert _cgroup_cpus(v2) == 1.5 and available_cpus(v2) == 1
    (v2 / "cpu.max").write_text("max 100000\n")
    assert _cgroup_cpus(v2) is None and available_cpus(v2) == mine
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert _cgroup_cpus(v1.parent) is None
    (v1 / "cpu.cfs_quota_us").write_text("50000\n")
    assert available_cpus(v1.parent) == 1  # half a CPU: still one thread
    (v2 / "cpu.max").write_text("garbage")
    assert _cgroup_cpus(v2) is None
