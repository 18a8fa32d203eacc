"""Run a server as a child process: start it, wait until it is ready, stop it cleanly.

Used by the demo, the benchmarks and the tests. `ServerProcess` is a context manager: the
server is always stopped on exit, with SIGTERM first and SIGKILL if it does not stop in time.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

READY_PATTERN = re.compile(r"serving on (tcp://\S+)")


class ServerStartError(RuntimeError):
    """The server exited or stayed silent instead of becoming ready."""


class ServerProcess:
    """``python -m libsrv serve --port 0 ...`` in a child process.

    `args` are extra ``serve`` flags. After `start` (or entering the context), `endpoint` is
    where it listens and `pid` its process id. `output` holds what it printed so far.
    """

    def __init__(self, db: Path | str, *, workers: int = 2, storage: str = "journal",
                 args: Sequence[str] = (), host: str = "127.0.0.1", port: int = 0,
                 quiet: bool = True, ready_timeout: float = 60.0,
                 command: Sequence[str] | None = None) -> None:
        """`command` replaces the whole command line (for other programs that print the same
        ready line, such as the echo baseline)."""
        self.command = list(command) if command is not None else [
            sys.executable, "-m", "libsrv", "serve", "--host", host, "--port", str(port),
            "--workers", str(workers), "--db", str(db), "--storage", storage,
            *(["--quiet"] if quiet else []), *args]
        self.ready_timeout = ready_timeout
        self.endpoint = ""
        self._proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._ready = threading.Event()

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the server is not started")
        return self._proc.pid

    @property
    def output(self) -> str:
        return "".join(self._lines)

    def start(self) -> ServerProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # stdin stays an open pipe: a server started with --exit-with-parent stops when it
        # closes, that is when this process ends, however it ends.
        self._proc = subprocess.Popen(self.command, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, env=env, start_new_session=True)
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.monotonic() + self.ready_timeout
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise ServerStartError(
                    f"server did not become ready: {' '.join(self.command)}\n{self.output}")
        return self

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.append(line)
            match = READY_PATTERN.search(line)
            if match and not self._ready.is_set():
                self.endpoint = match.group(1)
                self._ready.set()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; SIGKILL the whole process group if it takes too long."""
        if self._proc is None:
            return 0
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._kill_group()
        return self._proc.returncode if self._proc.returncode is not None else -9

    def kill(self) -> None:
        """SIGKILL the server and every process it started (its process group)."""
        if self._proc is None:
            return
        self._kill_group()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(10)

    def _kill_group(self) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
