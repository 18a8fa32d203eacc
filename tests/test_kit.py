"""kit.py, the one bootstrapper: its JupyterLab job starts, also as root; a job stopped
through it stops everything it started."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import (
    ROOT,
    SHIPPED_CATALOG,
    ChildOutput,
    end_process,
    free_port,
    wait_until,
)

pytestmark = pytest.mark.slow


def load_kit():
    spec = importlib.util.spec_from_file_location("kit", ROOT / "kit.py")
    assert spec is not None and spec.loader is not None
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)
    return kit


def status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except OSError:
        return None


def test_the_lab_job_starts_jupyterlab_as_whoever_runs_it(tmp_path: Path) -> None:
    """In CI this runs as root, where JupyterLab refuses to start unless told it may."""
    port = free_port()
    command = load_kit().lab_command(sys.executable, [
        "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
        "--IdentityProvider.token=kit-test"])
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"))
    lab = subprocess.Popen([str(part) for part in command], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: lab.poll() is not None or
                   status(f"http://127.0.0.1:{port}/api/status?token=kit-test"),
                   timeout=90, message="JupyterLab to answer")
        assert lab.poll() is None, lab.communicate(timeout=10)[0][-2000:]
        listing = status(f"http://127.0.0.1:{port}/api/contents/03-latency.ipynb"
                         "?token=kit-test")
        assert listing == 200  # it serves the notebooks folder
    finally:
        end_process(lab)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_job_stopped_through_kit_stops_what_it_started_quietly(
        tmp_path: Path, signum: int) -> None:
    """kit.py passes the signal on and waits: the server it started stops with its workers,
    and nobody prints a traceback."""
    import psutil

    db = tmp_path / "catalog.json"
    shutil.copy(SHIPPED_CATALOG, db)
    kit = subprocess.Popen([sys.executable, str(ROOT / "kit.py"), "serve", "--port", "0",
                            "--db", str(db)], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output = ChildOutput(kit)
    started: list[psutil.Process] = []
    try:
        output.wait_for(r"libsrv serving on", timeout=100)
        started = psutil.Process(kit.pid).children(recursive=True)
        assert len(started) >= 3  # the server, its feed and its workers
        kit.send_signal(signum)
        text = output.wait_closed(timeout=60)
        assert kit.wait(timeout=30) in (0, 130, 128 + signum), text[-2000:]
        assert "Traceback" not in text, text[-2000:]
        _, alive = psutil.wait_procs(started, timeout=30)
        assert not alive, [p.pid for p in alive]
    finally:
        for process in [psutil.Process(kit.pid), *started] if kit.poll() is None else started:
            with contextlib.suppress(psutil.Error):
                process.kill()
