"""docs/api.md stays true: every error reason the code raises is in its table, and the README's grpcurl request
bodies parse as the request messages of the RPCs they call (grpcurl itself is not installed here)."""

from __future__ import annotations

import re
from pathlib import Path

from google.protobuf import json_format

from winnow.api.gateway.v1 import gateway_pb2

ROOT = Path(__file__).resolve().parents[2]


def _raised_reasons() -> set[str]:
    reasons: set[str] = set()
    for path in (ROOT / "src/winnow").rglob("*.py"):
        if "/api/" in str(path):
            continue
        text = path.read_text()
        reasons |= set(re.findall(r'reason="([A-Z][A-Z0-9_]+)"', text))
        reasons |= set(re.findall(r'default_reason = "([A-Z][A-Z0-9_]+)"', text))
    for convert in sorted((ROOT / "src/winnow/services/gateway").glob("convert*.py")):
        reasons |= set(re.findall(r'"([A-Z][A-Z_]{5,})"', convert.read_text()))  # invalid(message, field, REASON)
    return reasons


def test_every_raised_reason_is_documented():
    table = (ROOT / "docs/api.md").read_text()
    reasons = _raised_reasons()
    assert {"K_TOO_LARGE", "TOO_MANY_ITEMS", "BAD_TOKEN", "OVERLOADED", "BAD_CURSOR"} <= reasons
    missing = sorted(r for r in reasons if f"`{r}`" not in table)
    assert not missing, f"reasons raised but not in docs/api.md: {missing}"


def test_readme_grpcurl_bodies_parse_as_their_request_messages():
    readme = (ROOT / "README.md").read_text()
    calls = re.findall(r"-d '(\{.*?\})' \\\s*\n\s*\S+ winnow\.gateway\.v1\.Gateway/(\w+)", readme)
    calls += re.findall(r"-d '(\{.*?\})' \S+ winnow\.gateway\.v1\.Gateway/(\w+)", readme)
    assert {m for _, m in calls} >= {"Search", "BulkSearch", "Upsert", "ClusterInfo"}
    service = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"]
    for body, method in calls:
        message_cls = getattr(gateway_pb2, service.methods_by_name[method].input_type.name)
        json_format.Parse(body, message_cls())  # raises on an unknown field or a wrong type
