#!/usr/bin/env python3
"""Set up the kit and run its jobs, with nothing installed but Python 3.11+.

    python3 kit.py demo     # set up, start a server, run the experiment, write the report
    python3 kit.py test     # set up, lint, run the whole test suite
    python3 kit.py forms    # the forms page (Voila) on a server of its own
    python3 kit.py lab      # JupyterLab on the notebooks

The first run creates .venv/ and installs the project with its test tools; later runs reuse it
(and reinstall when pyproject.toml changes).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".kit-installed"


def run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    result = subprocess.run([str(a) for a in args], cwd=ROOT)
    if result.returncode:
        sys.exit(result.returncode)


def setup() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PY.exists():
        return
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", ".[test]")
    STAMP.write_text(wanted)


def ensure_browser() -> None:
    """The browser test needs Debian's Chromium; install it where we may (root with apt-get,
    as in CI). Elsewhere that one test skips and says how to install it."""
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        print("note: chromium is not installed, so the browser test will be skipped", flush=True)
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]):
        print("+", " ".join(command), flush=True)
        if subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode:
            print("note: could not install chromium; the browser test will be skipped")
            return


def main(argv: list[str]) -> None:
    jobs = {
        "setup": [],
        "demo": [[PY, "-m", "libsrv", "demo"], [PY, "-m", "bench", "demo", *argv[1:]]],
        "test": [[PY, "-m", "ruff", "check", "."], [PY, "-m", "pytest", *argv[1:]]],
        "serve": [[PY, "-m", "libsrv", "serve", *argv[1:]]],
        "forms": [[PY, "-m", "libsrv", "forms", *argv[1:]]],
        "lab": [[PY, "-m", "jupyter", "lab", "notebooks", *argv[1:]]],
    }
    if not argv or argv[0] not in jobs:
        sys.exit(f"usage: python3 kit.py {{{'|'.join(jobs)}}} [args]")
    setup()
    if argv[0] == "test":
        ensure_browser()
    for command in jobs[argv[0]]:
        run(*command)


if __name__ == "__main__":
    main(sys.argv[1:])
