"""``python -m libsrv forms``: the forms page (Voilà), the classroom replacement for the class's
Flask page, with a catalog server of its own unless given one.

The page is ``libsrv/pages/forms.ipynb``: a heading for students and the forms, nothing meant
for notebook authors. Every page load starts a kernel (a visitor's own); a kernel nobody is
connected to (a health check, a bot, a closed tab) is stopped after `cull_after` idle seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

ENDPOINT_VARIABLE = "LIBSRV_ENDPOINT"  # the page's kernels find the server here
CULL_AFTER = 120.0  # seconds a kernel with no page connected may idle before it is stopped


def voila_command(page: Path, *, host: str, port: int, cull_after: float) -> list[str]:
    """The Voilà command line for `page`: quiet (only errors reach the teacher's terminal),
    kernels on local IPC sockets rather than TCP, idle unconnected kernels culled."""
    return [sys.executable, "-m", "voila", str(page), "--no-browser", f"--port={port}",
            f"--Voila.ip={host}", "--Voila.log_level=ERROR", "--KernelManager.transport=ipc",
            # JupyterLab's preview button is of no use on the page
            '--VoilaConfiguration.extension_denylist=["@voila-dashboards/jupyterlab-preview"]',
            f"--MappingKernelManager.cull_idle_timeout={max(1, round(cull_after))}",
            f"--MappingKernelManager.cull_interval={max(1, min(round(cull_after / 4), 30))}",
            "--MappingKernelManager.cull_connected=False"]


def serve_forms(*, endpoint: str | None, db: Path | None, workers: int, host: str,
                port: int, cull_after: float = CULL_AFTER) -> int:
    """Serve the page until Ctrl-C; the server started here (if any) is stopped after, and the
    catalog copy it served is removed."""
    from libsrv.ui import LocalServer  # widgets and Jupyter only once a page is served

    server = None
    if endpoint is None:
        # A given catalog is served in place; without one, a copy of the shipped catalog.
        server = LocalServer(db, workers=workers, copy=db is None)
        endpoint = server.endpoint
    env = dict(os.environ, **{ENDPOINT_VARIABLE: endpoint})
    where = f" (catalog {db})" if db is not None else \
        f" (a copy of the shipped catalog, {server.db if server else ''}, removed when it stops)"
    print(f"Forms page on http://{host}:{port}/ talking to {endpoint}"
          + (where if server else "") + ". Ctrl-C stops it.", flush=True)
    try:
        with resources.as_file(resources.files("libsrv") / "pages" / "forms.ipynb") as page:
            command = voila_command(page, host=host, port=port, cull_after=cull_after)
            return subprocess.run(command, env=env).returncode
    except KeyboardInterrupt:
        return 0
    finally:
        if server is not None:
            server.stop()
