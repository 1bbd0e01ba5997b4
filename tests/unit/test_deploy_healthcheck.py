"""The container health check CLI against a real in-process GrpcService."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest

from winnow.rpc import healthcheck
from winnow.rpc.server import GrpcService
from winnow.common.settings import ServiceSettings


@pytest.fixture
async def service():
    svc = GrpcService("test", ServiceSettings(host="127.0.0.1", port=0), lambda server: [])
    await svc.start()
    yield svc
    await svc.drain(0)


async def test_not_serving_until_ready_then_serving(service):
    target = f"127.0.0.1:{service.port}"
    # the check is a blocking client; the server lives on this loop, so run the client in a thread
    code, line = await asyncio.to_thread(healthcheck.check, target)
    assert (code, line) == (healthcheck.NOT_SERVING, f"{target}: NOT_SERVING")
    await service.mark_ready()
    code, line = await asyncio.to_thread(healthcheck.check, target)
    assert (code, line) == (healthcheck.OK, f"{target}: SERVING")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "winnow.rpc.healthcheck", target, stdout=subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and b"SERVING" in out


def test_unreachable_and_bad_arguments():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, line = healthcheck.check(f"127.0.0.1:{port}", timeout_s=0.5)
    assert code == healthcheck.UNREACHABLE and "UNAVAILABLE" in line
    assert healthcheck.main(["no-port"]) == healthcheck.BAD_ARGS
    assert healthcheck.main([]) == healthcheck.BAD_ARGS
