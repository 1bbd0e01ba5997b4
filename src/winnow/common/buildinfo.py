"""What build a process runs: the package version and the git commit, for `winnow_build_info` and ClusterInfo."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Written into the image at build time (Dockerfile: git rev-parse HEAD > src/winnow/GIT_SHA); absent in a checkout.
_SHA_FILE = _PACKAGE_DIR / "GIT_SHA"


def _version() -> str:
    try:
        return metadata.version("winnow")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@lru_cache(maxsize=1)
def git_sha() -> str:
    """The commit this code came from: the GIT_SHA file of an image, else `git rev-parse` of a checkout."""
    if _SHA_FILE.is_file():
        return _SHA_FILE.read_text().strip()[:12] or "unknown"
    try:
        out = subprocess.run(["git", "-C", str(_PACKAGE_DIR), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


VERSION = _version()
