"""Gateway benchmark; same as `winnow bench gateway`. Usage: python bench/gateway.py [--json] [--quick]"""

import sys

from winnow.bench.gateway import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
