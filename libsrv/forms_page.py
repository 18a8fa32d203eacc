"""``python -m libsrv forms``: the forms notebook as a standalone page (Voilà), the classroom
replacement for the class's Flask page, with a catalog server of its own unless given one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from libsrv.ui import LocalServer

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "02-forms.ipynb"
# Every page load under Voilà starts a kernel; cull the idle ones so a class does not pile
# them up.
CULL_FLAGS = ["--MappingKernelManager.cull_idle_timeout=1800",
              "--MappingKernelManager.cull_interval=120"]


def serve_forms(*, endpoint: str | None, db: Path | None, workers: int, host: str,
                port: int) -> int:
    """Serve the page until Ctrl-C; the server started here (if any) is stopped after."""
    server = None
    if endpoint is None:
        # A given catalog is served in place; without one, a copy of the shipped catalog.
        server = LocalServer(db, workers=workers, copy=db is None)
        endpoint = server.endpoint
    env = dict(os.environ, LIBSRV_ENDPOINT=endpoint)
    command = [sys.executable, "-m", "voila", str(NOTEBOOK), "--no-browser",
               f"--port={port}", f"--Voila.ip={host}", *CULL_FLAGS]
    print(f"Forms page on http://{host}:{port}/ talking to {endpoint}"
          + (f" (catalog {server.db})" if server else "") + ". Ctrl-C stops it.", flush=True)
    try:
        return subprocess.run(command, env=env).returncode
    except KeyboardInterrupt:
        return 0
    finally:
        if server is not None:
            server.stop()
