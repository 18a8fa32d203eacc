"""Run a server as a child process: start it, wait until it is ready, stop it cleanly.

Used by the notebooks' `LocalServer`, the demo, the benchmarks and the tests. The child calls
`libsrv.serve` with a `ServerConfig` (``python -m libsrv.process``), or runs the ``libsrv
serve`` command when the caller passes command-line flags (tests of the CLI do). `ServerProcess`
is a context manager: the server is always stopped on exit, with SIGTERM first and SIGKILL if it
does not stop in time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from libsrv.config import DEFAULT_HOST, DEFAULT_WORKERS, ServerConfig
from libsrv.defaults import DEFAULT_ENGINE

READY_PATTERN = re.compile(r"serving on ((?:tcp|grpc|http|raw)://\S+)")
FEED_PATTERN = re.compile(r"changes published on (tcp://\S+)")


class ServerStartError(RuntimeError):
    """The server exited or stayed silent instead of becoming ready."""


class ServerProcess:
    """A server on `db` in a child process, on a free port unless `port` is given.

    `options` are further `ServerConfig` fields (``{"locking": False}``...); the config is
    checked here, before anything starts. `exit_with_parent` stops the server when this process
    ends, however it ends. `args` are ``libsrv serve`` flags instead (the child then runs the
    command line, which tests of the CLI want). After `start` (or entering the context),
    `endpoint` is where it listens and `pid` its process id. `output` holds what it printed.
    """

    def __init__(self, db: Path | str, *, workers: int = DEFAULT_WORKERS,
                 storage: str = DEFAULT_ENGINE, options: Mapping[str, Any] | None = None,
                 args: Sequence[str] = (), host: str = DEFAULT_HOST, port: int = 0,
                 quiet: bool = True, exit_with_parent: bool = False,
                 ready_timeout: float = 60.0, command: Sequence[str] | None = None) -> None:
        """`command` replaces the whole command line (for other programs that print the same
        ready line, such as the echo baseline)."""
        if command is not None:
            self.command = list(command)
        elif args:
            self.command = [
                sys.executable, "-m", "libsrv", "serve", "--host", host, "--port", str(port),
                "--workers", str(workers), "--db", str(db), "--storage", storage,
                *(["--quiet"] if quiet else []),
                *(["--exit-with-parent"] if exit_with_parent else []), *args]
        else:
            config = ServerConfig(host=host, port=port, workers=workers, db=str(db),
                                  storage=storage, quiet=quiet, **dict(options or {}))
            self.command = [sys.executable, "-m", "libsrv.process",
                            json.dumps(dataclasses.asdict(config)),
                            *(["--exit-with-parent"] if exit_with_parent else [])]
        self._config = None if command is not None or args else config
        self._exit_with_parent = exit_with_parent
        self.ready_timeout = ready_timeout
        self.endpoint = ""
        self.feed_endpoint: str | None = None  # where it publishes changes, if it does
        self._proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._ready = threading.Event()
        self._pump_thread: threading.Thread | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the server is not started")
        return self._proc.pid

    @property
    def output(self) -> str:
        """What it printed so far. A thread reads it, so a line the server has just printed
        may not be here yet: use `wait_for_output` to wait for one while it runs; after
        `stop`, `kill` or `wait` returns, everything it printed is here."""
        return "".join(self._lines)

    def wait_for_output(self, text: str, timeout: float = 10.0) -> str:
        """Wait until `text` appears in what it printed; the output. Raises TimeoutError,
        with the output, after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not printed in {timeout} s:\n{self.output}")
            time.sleep(0.02)
        return self.output

    def start(self) -> ServerProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # stdin stays an open pipe: a server started with --exit-with-parent stops when it
        # closes, that is when this process ends, however it ends.
        self._proc = subprocess.Popen(self.command, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, env=env, start_new_session=True)
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()
        deadline = time.monotonic() + self.ready_timeout
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise ServerStartError(
                    f"server did not become ready: {' '.join(self.command)}\n{self.output}")
        return self

    def restart(self) -> ServerProcess:
        """SIGKILL the server and all it started, then start it again on the same port and
        catalog (what a crash and a supervisor's restart do). Only for a server started from
        its options, not from `args` or `command`."""
        if self._config is None or self._proc is None:
            raise RuntimeError("only a started server made from options can be restarted")
        port = int(self.endpoint.rsplit(":", 1)[1])
        self.kill()
        self._config = dataclasses.replace(self._config, port=port)
        self.command = [sys.executable, "-m", "libsrv.process",
                        json.dumps(dataclasses.asdict(self._config)),
                        *(["--exit-with-parent"] if self._exit_with_parent else [])]
        self._ready = threading.Event()
        return self.start()

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.append(line)
            match = READY_PATTERN.search(line)
            if match and not self._ready.is_set():
                self.endpoint = match.group(1)
                feed = FEED_PATTERN.search(line)
                self.feed_endpoint = feed.group(1) if feed else None
                self._ready.set()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: float) -> int:
        """Wait for the server to exit by itself; its exit code. Raises
        subprocess.TimeoutExpired after `timeout` seconds (it is left running)."""
        if self._proc is None:
            raise RuntimeError("the server is not started")
        code = self._proc.wait(timeout)
        self._finish_output()
        return code

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
        self._finish_output()
        return self._proc.returncode if self._proc.returncode is not None else -9

    def kill(self) -> None:
        """SIGKILL the server and every process it started (its process group)."""
        if self._proc is None:
            return
        self._kill_group()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(10)
        self._finish_output()

    def _finish_output(self, timeout: float = 5.0) -> None:
        # The pipe closes once every process of the group that holds it has exited; the
        # thread then reads the last lines and ends.
        if self._pump_thread is not None:
            self._pump_thread.join(timeout)

    def _kill_group(self) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """The child's side: ``python -m libsrv.process CONFIG_JSON [--exit-with-parent]`` serves
    the config with `libsrv.serve` and prints the ready line `ServerProcess` waits for."""
    from libsrv.program import (
        configure_logging,
        logged_worker_entry,
        report_stop,
        stop_when_stdin_closes,
    )
    from libsrv.server import StopFlag
    from libsrv.serving import serve

    arguments = list(sys.argv[1:] if argv is None else argv)
    config = ServerConfig(**json.loads(arguments[0]))
    configure_logging(config.quiet)
    stop = StopFlag().install()
    if "--exit-with-parent" in arguments[1:]:
        stop_when_stdin_closes(stop)
    current = serve(config, stop=stop, worker_entry=logged_worker_entry,
                    on_ready=lambda line: print(line, flush=True))
    return report_stop(config, current)


if __name__ == "__main__":
    sys.exit(main())
