"""The `winnow` command. See `winnow --help`; exit codes are in `winnow.cli.failures`."""

from winnow.cli.app import DEFAULT_DATA_DIR, REPO_ROOT, SAMPLE, build_parser, main

__all__ = ["DEFAULT_DATA_DIR", "REPO_ROOT", "SAMPLE", "build_parser", "main"]
