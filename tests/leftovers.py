"""Processes the tests started and left running, found by a mark in their environment.

The test session puts a variable unique to it in its environment; every process a test starts
inherits it, even one whose parent died and left it to init, so at the end the session can tell
its own leftovers from everything else on the machine, and fail.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time

import psutil

TAG_VARIABLE = "LIBSRV_TEST_RUN"


def tag_this_session() -> str:
    """Mark every process started from now on (a fresh mark: a nested run gets its own)."""
    os.environ[TAG_VARIABLE] = secrets.token_hex(8)
    return os.environ[TAG_VARIABLE]


def _own_helpers() -> set[int]:
    """This process and its multiprocessing resource tracker (which ends when we do)."""
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker._resource_tracker, "_pid", None)
    return {os.getpid(), *([tracker] if tracker else [])}


def tagged_processes(tag: str) -> list[psutil.Process]:
    """Live processes (not zombies) that carry `tag`, other than this one and its helpers."""
    found = []
    own = _own_helpers()
    for process in psutil.process_iter():
        if process.pid in own:
            continue
        with contextlib.suppress(psutil.Error):
            if process.environ().get(TAG_VARIABLE) == tag and \
                    process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


def describe(process: psutil.Process) -> str:
    try:
        return f"PID {process.pid}: {' '.join(process.cmdline())[:160]}"
    except psutil.Error:
        return f"PID {process.pid}: (gone)"


def leftovers(tag: str, grace: float = 10.0) -> list[str]:
    """The processes carrying `tag` still alive after `grace` seconds (polled), described;
    each is then killed, so a failed check leaves nothing running either."""
    deadline = time.monotonic() + grace
    while (alive := tagged_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.1)
    described = [describe(p) for p in alive]
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)
    return described
