"""Which cluster a command talks to: --target, else WINNOW_TARGET, else the local cluster's state file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from winnow.cli.failures import CliError, Exit
from winnow.client.settings import ClientSettings


@dataclass(frozen=True)
class Found:
    target: str
    source: str  # "--target", "WINNOW_TARGET" or "local cluster (<data-dir>/cluster.json)"


def find(flag: str | None, data_dir: str, settings: ClientSettings) -> Found:
    """The gateway to use and where it came from; CliError (unavailable) when there is none."""
    if flag:
        return Found(flag, "--target")
    if settings.target:
        return Found(settings.target, "WINNOW_TARGET")
    from winnow.cluster.launcher import STATE_FILE, read_state

    state = read_state(Path(data_dir))
    if state and state.get("gateway"):
        return Found(state["gateway"], f"local cluster ({Path(data_dir) / STATE_FILE})")
    raise CliError(
        f"no cluster found: no --target, no WINNOW_TARGET, and no local cluster in {data_dir}/ "
        "(start one with `winnow up --detach`, or point at a gateway with WINNOW_TARGET=host:port)",
        Exit.UNAVAILABLE, reason="NO_CLUSTER",
    )
