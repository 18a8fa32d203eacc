#!/usr/bin/env python3
"""Set up the kit and run its jobs, with nothing installed but Python 3.11+.

    python3 kit.py demo     # set up, start a server, run the experiment, write the report
    python3 kit.py test     # set up, lint, run the fast tests (--all: every test, as CI does)
    python3 kit.py forms    # the forms page (Voila) on a server of its own
    python3 kit.py lab      # JupyterLab on the notebooks (also as root, as in containers)
    python3 kit.py serve    # a catalog server (flags as `python -m libsrv serve`)
    python3 kit.py browser  # install Chromium for the browser tests (root with apt-get)
    python3 kit.py docs     # regenerate docs/cli.md and the README's serve table from the parsers

The first run creates .venv/ and installs the project with its test tools, showing each step and
pip's own progress; later runs reuse it (and reinstall when pyproject.toml changes). Nothing is
installed outside .venv/ except by `browser`, which says what it runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".kit-installed"


FORWARDED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                  if hasattr(signal, name))


def run(*args: str | Path) -> None:
    """Run one job and wait for it; exit with its code if it fails.

    The job runs in a process group of its own, and kit.py passes each SIGINT, SIGTERM or
    SIGHUP on to it once (a Ctrl-C in the terminal reaches kit.py only) and waits for it to
    stop: a job stopped through kit.py stops everything it started, and nobody prints a
    KeyboardInterrupt traceback."""
    print("+", " ".join(str(a) for a in args), flush=True)
    own_group = {"process_group": 0} if os.name == "posix" else {}
    child = subprocess.Popen([str(a) for a in args], cwd=ROOT, **own_group)

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code:
        sys.exit(128 - code if code < 0 else code)  # killed by a signal: the shell's 128+N


def setup() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PY.exists():
        return
    if not PY.exists():
        print(f"[setup 1/2] creating the virtual environment {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    print("[setup 2/2] installing libsrv and its dependencies into .venv (the first time "
          "takes a minute or two; pip shows its progress)", flush=True)
    run(PY, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "on",
        "--root-user-action=ignore",
        "-e", ".[dev]")
    STAMP.write_text(wanted)
    print("[setup] done", flush=True)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def install_browser() -> None:
    """Chromium for the browser tests: Debian's package, installed with apt-get as root (as in
    CI). Elsewhere it says what to run instead."""
    if chromium():
        print(f"Chromium is installed ({chromium()}); the browser tests will run.")
        return
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit("Install Chromium with your system's package manager (Debian/Ubuntu: "
                 "sudo apt-get install chromium), then run the tests again.")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update"],
                    ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        print("+", " ".join(command), flush=True)
        if subprocess.run(command, env=env).returncode:
            sys.exit("could not install Chromium; the browser tests will be skipped")


def lab_command(python: Path | str, args: list[str]) -> list[str | Path]:
    """JupyterLab on the notebooks; as root (classroom containers) it must be allowed."""
    as_root = os.name == "posix" and os.geteuid() == 0
    return [python, "-m", "jupyter", "lab", "notebooks", *(["--allow-root"] if as_root else []),
            *args]


def pytest_args(args: list[str]) -> list[str]:
    """The fast tier unless `--all` is among `args` (each test file declares its tier), on
    every core (pytest-xdist, one test file per worker at a time: a file's shared servers and
    clusters stay in one process) unless `args` choose (`-n 0`: one process)."""
    parallel = [] if any(a.startswith("-n") for a in args) else [
        "-n", "auto", "--dist", "loadfile"]
    if "--all" in args:
        return [*parallel, *(a for a in args if a != "--all")]
    return [*parallel, "-m", "not slow", *args]


def main(argv: list[str]) -> None:
    jobs = {
        "setup": [],
        "demo": [[PY, "-m", "libsrv", "demo"], [PY, "-m", "libsrv_bench", "demo", *argv[1:]]],
        "test": [[PY, "-m", "ruff", "check", "."], [PY, "-m", "pytest", *pytest_args(argv[1:])]],
        "serve": [[PY, "-m", "libsrv", "serve", *argv[1:]]],
        "forms": [[PY, "-m", "libsrv", "forms", *argv[1:]]],
        "lab": [lab_command(PY, argv[1:])],
        "browser": [],
        "docs": [[PY, "scripts/cli_reference.py"]],
        "notebooks": [[PY, "scripts/notebooks.py", *argv[1:]]],
    }
    if not argv or argv[0] not in jobs:
        sys.exit(f"usage: python3 kit.py {{{'|'.join(jobs)}}} [args]")
    if argv[0] == "browser":
        install_browser()
        return
    setup()
    if argv[0] == "test" and not chromium():
        print("note: Chromium is not installed, so the browser tests will be skipped; "
              "`python3 kit.py browser` installs it", flush=True)
    for command in jobs[argv[0]]:
        run(*command)


if __name__ == "__main__":
    main(sys.argv[1:])
