"""The `winnow` command. See `winnow --help`; exit codes are in `winnow.cli.failures`."""

from winnow.cli.app import build_parser, main
from winnow.cli.cluster import REPO_ROOT, SAMPLE
from winnow.cli.common import DEFAULT_DATA_DIR

__all__ = ["DEFAULT_DATA_DIR", "REPO_ROOT", "SAMPLE", "build_parser", "main"]
