"""Index shard benchmark: `python bench/index.py [--json] [--size N] [--quick]` (same as `winnow bench index`)."""

import sys

from winnow.bench.index import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
