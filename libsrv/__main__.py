"""``python -m libsrv``: see `libsrv.cli`."""

import sys

from libsrv.cli import main

if __name__ == "__main__":
    sys.exit(main())
