"""A server the bench starts from a command line: a group's own (``bench run --server-cmd``, a
`grade` group's ``command``). It runs in a process group of its own, is ready once it answers a
query in its dialect, can be SIGKILLed and started again (the ``kill-server`` fault, grade's
crash check) or paused (``stop-server``), and is stopped with everything it started at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from libsrv.protocol import Action
from libsrv_bench.dialects import Dialect
from libsrv_bench.foreign import Asker
from libsrv_bench.history import BAD_REPLY, TIMEOUT

START_SECONDS = 30.0  # a student's server may load a big file first
PROBE_SECONDS = 1.0  # each query asked while it starts
STOP_SECONDS = 10.0  # after SIGTERM, before SIGKILL
# a well-formed ISBN in no catalog: a probe needs an answer, not a book (NOT_FOUND will do)
UNKNOWN_ISBN = "9780000000002"
SAID_LINES, SAID_CHARS = 5, 600  # the end of its error output, said when it does not start


class CommandServer:
    """`command` (an argument list) run in `cwd`, reachable at `endpoint` in `dialect`;
    `probe` is the ISBN asked to tell that it answers. Its standard output goes nowhere and
    its error output to a temporary file, not a pipe: a server that prints much would block on
    a full pipe. When it does not start, the error says the file's last lines (a student's
    traceback)."""

    def __init__(self, command: list[str], endpoint: str, dialect: Dialect, *,
                 cwd: Path | str | None = None, probe: str = UNKNOWN_ISBN) -> None:
        if not command:
            raise ValueError("the server's command is empty")
        self.command, self.endpoint, self.dialect = list(command), endpoint, dialect
        self.cwd, self.probe = cwd, probe
        self.process: subprocess.Popen[bytes] | None = None
        # its error output, read when it fails to start; open as long as the server may run
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115

    @property
    def pid(self) -> int | None:
        """The process group's leader while it runs (its pid is the group's id)."""
        if self.process is None or self.process.poll() is not None:
            return None
        return self.process.pid

    def start(self) -> CommandServer:
        """Start it and wait until it answers; RuntimeError says why not (it exited, or did
        not answer within START_SECONDS), and nothing is left running then."""
        self._errors.seek(0)
        self._errors.truncate()
        try:
            self.process = subprocess.Popen(self.command, cwd=self.cwd,
                                            stdout=subprocess.DEVNULL, stderr=self._errors,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as error:
            raise RuntimeError(f"cannot run {self.command[0]!r}: {error.strerror}") from None
        asker = Asker(self.endpoint, self.dialect, timeout=PROBE_SECONDS)
        deadline = time.monotonic() + START_SECONDS
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"exited with code {self.process.returncode} at start"
                                       + self._last_errors())
                answer = asker.ask(Action.QUERY_ISBN, isbn=self.probe)
                if answer.code not in (TIMEOUT, BAD_REPLY):
                    return self
            raise RuntimeError(f"did not answer within {START_SECONDS:g} s of starting"
                               + self._last_errors())
        except RuntimeError:
            self.kill()
            raise
        finally:
            asker.close()

    def _last_errors(self) -> str:
        """The last SAID_LINES lines it wrote to its error output, after a colon (or "")."""
        self._errors.seek(0)
        lines = self._errors.read().decode(errors="replace").strip().splitlines()
        said = " | ".join(line.strip() for line in lines[-SAID_LINES:])
        return f": {'...' if len(said) > SAID_CHARS else ''}{said[-SAID_CHARS:]}" if said else ""

    def _signal(self, signum: int) -> None:
        """Signal its whole process group, also once its first process has exited: what it
        started (workers behind a proxy, say) may still run."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL it and everything in its process group (a crash)."""
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(STOP_SECONDS)

    def restart(self) -> CommandServer:
        """A crash and a supervisor's restart: SIGKILL, then the same command again."""
        self.kill()
        return self.start()

    def stop(self) -> None:
        """SIGTERM to its process group (SIGCONT too, should a fault have paused it), then
        SIGKILL after STOP_SECONDS."""
        self._signal(signal.SIGTERM)
        self._signal(signal.SIGCONT)
        if self.process is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_SECONDS)
        self.kill()  # what it started in its group and left behind goes too
