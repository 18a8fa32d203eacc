"""Test helpers: paths, free ports, real clients and raw sockets with timeouts, polling with a
deadline. The tests import them from here; conftest.py holds the fixtures."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
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


def end_process(process: subprocess.Popen, timeout: float = 30.0) -> str:
    """SIGTERM a helper process (JupyterLab, Voila), wait, SIGKILL it if it lingers; its
    remaining output."""
    process.terminate()
    try:
        return process.communicate(timeout=timeout)[0] or ""
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate(timeout=10)[0] or ""
