"""Thin script for `winnow bench models` (see winnow.bench.models): .venv/bin/python bench/models.py --json"""

import sys

from winnow.bench.models import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
