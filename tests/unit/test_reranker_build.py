"""The reranker serves a trained directory's cascade depth unless its settings name one."""

from __future__ import annotations

import json

from winnow.services.reranker.__main__ import build
from winnow.services.reranker.settings import RerankerSettings

from tests.unit.test_reranker_cascade import LengthScorer


async def test_the_model_directory_s_depth_is_served_unless_a_setting_overrides_it(tmp_path):
    (tmp_path / "winnow_reranker.json").write_text(json.dumps({"cascade_depth": 7, "fusion_weight": 0.4}))
    base = {"scorer": "cross-encoder", "model_dir": str(tmp_path), "port": 0}
    for setting, served in ((-1, 7), (0, 0), (12, 12)):
        wiring = build(RerankerSettings(**base, cascade_depth=setting), scorer=LengthScorer())
        try:
            assert wiring.core.cascade_depth == served
        finally:
            await wiring.core.close()
    wiring = build(RerankerSettings(port=0), scorer=LengthScorer())  # late interaction: no manifest, no cut
    assert wiring.core.cascade_depth == 0
    await wiring.core.close()
