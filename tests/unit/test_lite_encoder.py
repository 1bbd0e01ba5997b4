"""The lite loader (transformers + pooling, no sentence-transformers) gives sentence-transformers' vectors."""

import json

import numpy as np
import pytest

from winnow.models.lite import LiteModel, lite_layout
from winnow.models.loading import default_model_dir


def test_layout_of_the_packaged_minilm():
    assert lite_layout(default_model_dir()) == {"pooling": "mean", "max_seq_length": 256, "prompts": {}}


def test_other_layouts_fall_back(tmp_path):
    mods = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]
    (tmp_path / "modules.json").write_text(json.dumps(mods))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    assert lite_layout(tmp_path) is None  # a Dense layer: sentence-transformers runs it
    (tmp_path / "modules.json").write_text(json.dumps(mods[:2]))
    assert lite_layout(tmp_path)["pooling"] == "mean"
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_weightedmean_tokens": True}))
    assert lite_layout(tmp_path) is None
    assert lite_layout(tmp_path / "missing") is None


@pytest.mark.slow
def test_vectors_equal_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    from winnow.models.encoder import SentenceTransformerEncoder

    texts = ["aspirin", "does low dose aspirin prevent heart attacks in older adults?",
             " ".join(["vitamin d deficiency and bone density"] * 60)]  # longer than 256 tokens: truncated
    enc = SentenceTransformerEncoder(device="cpu")
    assert isinstance(enc._model, LiteModel)
    ours = enc.encode(texts, kind="query")
    st = SentenceTransformer(str(default_model_dir()), device="cpu")
    st.max_seq_length = enc.max_seq_length
    theirs = st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(ours, theirs, atol=2e-5)
