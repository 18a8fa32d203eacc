"""``python -m libsrv forms``: the forms page (Voilà), the classroom replacement for the class's
Flask page, with a catalog server of its own unless given one.

The page is ``libsrv/pages/forms.ipynb``: a heading for students and the forms, nothing meant
for notebook authors. Every page load starts a kernel (a visitor's own); a kernel idle for
`cull_after` seconds (a health check, a bot, a closed tab, a tab left open) is stopped.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from importlib import resources
from pathlib import Path

from libsrv.config import ENDPOINT_VARIABLE, LANG_VARIABLE, LOOPBACK_HOSTS
from libsrv.defaults import DEFAULT_PAGE_LANG

# Seconds a kernel may idle before it is stopped, whether a page is connected or not: open tabs
# left idle must not hold the --max-kernels places (a student back after that reloads the page).
CULL_AFTER = 600.0
MAX_KERNELS = 20  # visitors at once (a kernel is about 55 MB)
STOP_SECONDS = 20.0  # Voilà's time to stop its kernels before it is killed


def page_token(host: str, token: str | None) -> str | None:
    """The token visitors need: the one given; else a new one when the page is open beyond
    this machine (students get the link with it); else none. "" turns it off."""
    if token is not None:
        return token or None
    return None if host in LOOPBACK_HOSTS else secrets.token_urlsafe(9)


def voila_command(page: Path, *, host: str, port: int, cull_after: float,
                  max_kernels: int = MAX_KERNELS, token: str | None = None) -> list[str]:
    """The Voilà command line for `page`: quiet (only errors reach the teacher's terminal),
    kernels on local IPC sockets rather than TCP, at most `max_kernels` at once, idle
    unconnected kernels culled, and a `token` visitors must give when set."""
    return [sys.executable, "-m", "voila", str(page), "--no-browser", f"--port={port}",
            "--VoilaConfiguration.multi_kernel_manager_class="
            "libsrv.forms_kernels.CappedKernelManager",
            f"--CappedKernelManager.max_kernels={max_kernels}",
            f"--Voila.token={token or ''}",
            f"--Voila.ip={host}", "--Voila.log_level=ERROR", "--KernelManager.transport=ipc",
            # JupyterLab's preview button is of no use on the page (one item: the list syntax
            # prints a traitlets DeprecationWarning in the teacher's terminal)
            "--VoilaConfiguration.extension_denylist", "@voila-dashboards/jupyterlab-preview",
            f"--MappingKernelManager.cull_idle_timeout={max(1, round(cull_after))}",
            f"--MappingKernelManager.cull_interval={max(1, min(round(cull_after / 4), 30))}",
            "--MappingKernelManager.cull_connected=True",
            # voila.json beside the page: a websocket ping timeout tornado accepts (jupyter's
            # default, 3 intervals, makes tornado complain in the teacher's terminal; a number
            # cannot be given on the command line without a traitlets DeprecationWarning)
            "--Voila.config_file_paths", str(page.parent)]


def serve_forms(*, endpoint: str | None, db: Path | None, workers: int, host: str,
                port: int, cull_after: float = CULL_AFTER, max_kernels: int = MAX_KERNELS,
                token: str | None = None, lang: str = DEFAULT_PAGE_LANG) -> int:
    """Serve the page until Ctrl-C; the server started here (if any) is stopped after, and the
    catalog copy it served is removed. `lang` is the page's language, and that of the replies
    of the server started here."""
    from libsrv.ui import LocalServer  # widgets and Jupyter only once a page is served

    server = None
    if endpoint is None:
        # A given catalog is served in place; without one, a copy of the shipped catalog.
        server = LocalServer(db, workers=workers, copy=db is None, options={"lang": lang})
        endpoint = server.endpoint
    env = dict(os.environ, **{ENDPOINT_VARIABLE: endpoint, LANG_VARIABLE: lang})
    where = f" (catalog {db})" if db is not None else \
        f" (a copy of the shipped catalog, {server.db if server else ''}, removed when it stops)"
    token = page_token(host, token)
    shown = "127.0.0.1" if host in ("0.0.0.0", "*", "") else host
    link = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"Forms page on {link} talking to {endpoint}"
          + (where if server else "") + ". Ctrl-C stops it.", flush=True)
    if host not in LOOPBACK_HOSTS:
        print(f"Open to the network: students open http://<this machine's address>:{port}/"
              + (f"?token={token}" if token else "") + " (the token keeps others out).",
              flush=True)
    voila: subprocess.Popen[bytes] | None = None
    try:
        with resources.as_file(resources.files("libsrv") / "pages" / "forms.ipynb") as page:
            command = voila_command(page, host=host, port=port, cull_after=cull_after,
                                    max_kernels=max_kernels, token=token)
            voila = subprocess.Popen(command, env=env)
            return voila.wait()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the CLI turns it into this)
        return 0
    finally:
        if voila is not None:
            _stop(voila)
        if server is not None:
            server.stop()


def _stop(voila: subprocess.Popen[bytes]) -> None:
    """Stop Voilà (it stops its kernels), however this process was asked to stop: a signal to
    this process alone must not leave the page answering."""
    if voila.poll() is None:
        voila.terminate()
        try:
            voila.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            voila.kill()
            voila.wait(5)
