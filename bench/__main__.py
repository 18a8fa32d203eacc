"""``python -m bench``: the checkout's alias for ``python -m libsrv_bench``."""

import sys

from libsrv_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
