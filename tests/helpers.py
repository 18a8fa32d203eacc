"""Test helpers: paths, free ports, real clients and raw sockets with timeouts, polling with a
deadline. The tests import them from here; conftest.py holds the fixtures."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import zmq

from libsrv.client import LibraryClient
from libsrv.process import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CATALOG = ROOT / "libsrv" / "data" / "catalog.json"
CLASS_DB = Path(__file__).resolve().parent / "data" / "class_db.json"

SHAPES = [0, 2]  # --workers 0 (single REP) and the broker with two workers
ENGINES = ["journal", "json"]
RECV_TIMEOUT_MS = 5000


class ZmqProxy:
    """libzmq's own proxy (ROUTER in front, DEALER to `target`) on a thread: `endpoint` is its
    front; `close()` stops it (a TERMINATE on its control socket) and closes its sockets."""

    def __init__(self, ctx: zmq.Context, target: str) -> None:
        self.front, self.back = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
        control, self._steer = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        for sock in (self.front, self.back, control, self._steer):
            sock.linger = 0
        port = self.front.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.back.connect(target)
        address = f"inproc://steer-{id(self)}"
        control.bind(address)
        self._steer.connect(address)
        self._control = control
        self._thread = threading.Thread(target=zmq.proxy_steerable,
                                        args=(self.front, self.back, None, control),
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._steer.send(b"TERMINATE")
        self._thread.join(10)
        if self._thread.is_alive():
            pytest.fail("zmq.proxy did not stop on TERMINATE within 10 s")
        for sock in (self.front, self.back, self._control, self._steer):
            sock.close()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (for servers that must be absent)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_for(server: ServerProcess, *, timeout: float = 5.0, retries: int = 0) -> LibraryClient:
    return client_for_endpoint(server.endpoint, timeout=timeout, retries=retries)


def client_for_endpoint(endpoint: str, *, timeout: float = 5.0,
                        retries: int = 0) -> LibraryClient:
    """A client that fails after `timeout` instead of hanging."""
    return LibraryClient(endpoint, timeout=timeout, retries=retries)


def raw_exchange(ctx: zmq.Context, endpoint: str, frames: list[bytes],
                 timeout_ms: int = RECV_TIMEOUT_MS) -> bytes:
    """Send raw frames on a fresh REQ socket; the reply frame, or fail instead of hanging."""
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        sock.send_multipart(frames)
        if not sock.poll(timeout_ms, zmq.POLLIN):
            pytest.fail(f"no reply within {timeout_ms} ms to {frames!r:.200}")
        return sock.recv()
    finally:
        sock.close()


def wait_until(predicate: Callable[[], object], timeout: float = 20.0,
               message: str = "condition") -> object:
    """Poll `predicate` until it is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {message}")
        time.sleep(0.02)


def end_drained(process: subprocess.Popen, output: ChildOutput, timeout: float = 30.0) -> str:
    """SIGTERM a child whose output a ChildOutput reads, wait, SIGKILL it if it lingers; all
    it printed."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    return output.wait_closed(timeout=10)


def end_process(process: subprocess.Popen, timeout: float = 30.0) -> str:
    """SIGTERM a helper process (JupyterLab, Voila), wait, SIGKILL it if it lingers; its
    remaining output."""
    process.terminate()
    try:
        return process.communicate(timeout=timeout)[0] or ""
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate(timeout=10)[0] or ""


class ChildOutput:
    """A child process's stdout read by a thread, so a test waits for a line with a deadline
    (a bare ``readline`` blocks for as long as the child stays silent). Start the child with
    ``stdout=PIPE, text=True``; the pipe is drained until it closes, so the child never blocks
    on a full pipe."""

    def __init__(self, process: subprocess.Popen) -> None:
        if process.stdout is None:
            raise ValueError("start the child with stdout=subprocess.PIPE")
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._pump, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Iterable[str]) -> None:
        for line in stream:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @property
    def text(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first line matching the regular expression `pattern`; fails the test after
        `timeout` seconds, or when the child's output ends without one."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self._lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self._lines)
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    why = "its output ended" if self._closed else f"{timeout:g} s passed"
                    pytest.fail(f"no line matching {pattern!r} ({why}); output:\n"
                                f"{''.join(self._lines)[-3000:]}")
                self._changed.wait(left)

    def wait_closed(self, timeout: float = 30.0) -> str:
        """Everything the child printed, once its output ends; fails after `timeout`."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            pytest.fail(f"the child's output did not end within {timeout:g} s:\n{self.text}")
        return self.text
