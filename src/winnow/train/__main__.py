"""`python -m winnow.train reranker ...` (the same as `winnow train reranker ...`)."""

import sys

from winnow.train.cli import main

raise SystemExit(main(sys.argv[1:]))
