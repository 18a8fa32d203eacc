"""``python -m libsrv_bench``: see `libsrv_bench.cli`."""

import sys

from libsrv_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
