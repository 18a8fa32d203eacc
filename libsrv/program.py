"""Process-level set-up shared by the two programs that run a server: the ``libsrv serve``
command and the child process `libsrv.process.ServerProcess` starts.

The library itself never configures logging; a program does, here, once per process (the
broker's worker processes included).
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from libsrv.broker import worker_main
from libsrv.config import ServerConfig
from libsrv.server import StopFlag


def configure_logging(quiet: bool) -> None:
    """Messages on stderr, one per line; `quiet` hides the per-request log."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if quiet:
        logging.getLogger("libsrv.requests").setLevel(logging.WARNING)


def logged_worker_entry(config: ServerConfig, *args: Any) -> None:
    """Worker process entry: logging as in the program that started the broker."""
    configure_logging(config.quiet)
    worker_main(config, *args)


def stop_when_stdin_closes(stop: StopFlag) -> None:
    """Set `stop` once stdin reaches its end: a parent that keeps a pipe to our stdin stops us
    by ending, however it ends (even SIGKILL)."""

    def watch() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        stop.set()

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def report_stop(config: ServerConfig, current: bool) -> int:
    """Print how the server stopped; returns the exit status (1 when the catalog file could
    not be brought up to date)."""
    if not current:
        print(f"libsrv stopped, but {config.db} could not be brought up to date (see the error "
              "above); nothing is lost: the next start replays the journal beside it.",
              flush=True)
        return 1
    print(f"libsrv stopped; {config.db} is up to date.", flush=True)
    return 0
