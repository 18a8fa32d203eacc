"""CurveZMQ: listed clients are served, others are refused, and the wire is not plain JSON;
and the largest inputs the protocol allows stay cheap."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from libsrv.client import LibraryClient, ServerUnreachable
from libsrv.generate import isbn_for, write_catalog
from libsrv.process import ServerProcess
from libsrv.protocol import MAX_BORROWER_CHARS, MAX_FRAME_BYTES, MAX_PAGE, MAX_TITLE_CHARS
from libsrv.security import CurveKeys, make_keys
from tests.helpers import SHAPES, client_for, raw_exchange

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CurveZMQ"),
]


class Tap:
    """A TCP relay on loopback that keeps a copy of every byte going through it."""

    def __init__(self, target_port: int) -> None:
        self.seen = bytearray()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._target = target_port
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self._listener.accept()
            except OSError:
                return
            far = socket.create_connection(("127.0.0.1", self._target))
            for a, b in ((near, far), (far, near)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self.seen += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def close(self) -> None:
        self._listener.close()


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


@pytest.mark.parametrize("workers", SHAPES)
def test_curve_admits_listed_keys_only_and_encrypts(start_server, catalog_file: Path,
                                                    tmp_path: Path, workers: int) -> None:
    keys = tmp_path / "keys"
    make_keys(keys, ["ana"])
    stranger = tmp_path / "stranger"
    make_keys(stranger, ["eve"])  # a valid key pair that the server does not list
    server = start_server(catalog_file, workers=workers, args=["--curve", str(keys)])
    ana = CurveKeys.from_files(keys / "server.key", keys / "ana.key_secret")
    eve = CurveKeys.from_files(keys / "server.key", stranger / "eve.key_secret")
    tap = Tap(port_of(server.endpoint))
    try:
        through_tap = f"tcp://127.0.0.1:{tap.port}"
        with LibraryClient(through_tap, timeout=5, retries=0, curve=ana) as lib:
            reply = lib.loan_isbn("9788437604947", "Secret Borrower")
            assert reply.success and reply.book["prestatario"] == "Secret Borrower"
        for outsider in (LibraryClient(server.endpoint, timeout=0.5, retries=1, curve=eve),
                         LibraryClient(server.endpoint, timeout=0.5, retries=1)):
            with outsider, pytest.raises(ServerUnreachable):
                outsider.ping()
    finally:
        tap.close()
    assert len(tap.seen) > 200
    for plain in (b"loan_isbn", b"Secret Borrower", b"9788437604947", b"prestado"):
        assert plain not in tap.seen


def test_without_curve_the_same_tap_sees_plain_json(start_server, catalog_file: Path) -> None:
    server = start_server(catalog_file, workers=0)
    tap = Tap(port_of(server.endpoint))
    try:
        with LibraryClient(f"tcp://127.0.0.1:{tap.port}", timeout=5, retries=0) as lib:
            assert lib.loan_isbn("9788437604947", "Secret Borrower").success
    finally:
        tap.close()
    assert b"Secret Borrower" in tap.seen  # so the test above can fail


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_the_largest_allowed_inputs_stay_bounded(start_server, tmp_path: Path,
                                                 ctx: zmq.Context) -> None:
    db = write_catalog(tmp_path / "big.json", 20_000)
    server = start_server(db, workers=1)
    with client_for(server, timeout=30) as lib:
        pid = lib.ping().raw["pid"]
        warm = lib.query_title("x" * MAX_TITLE_CHARS)
        assert warm.code == "NOT_FOUND"
        before = rss_kb(pid)
        for n in range(30):
            page = lib.catalog(offset=(n % 20) * MAX_PAGE, limit=MAX_PAGE)
            assert len(page.books) == MAX_PAGE
            found = lib.query_title("El", limit=MAX_PAGE)  # every title matches
            assert len(found.books) == MAX_PAGE and found.raw["total"] == 20_000
            assert lib.query_title("y" * MAX_TITLE_CHARS).code == "NOT_FOUND"
            assert lib.loan_isbn("9798000000007", "b" * MAX_BORROWER_CHARS).code in (
                "OK", "UNAVAILABLE")
        padding = "p" * (MAX_FRAME_BYTES - 200)
        frame = (b'{"action": "ping", "padding": "' + padding.encode() + b'"}')
        assert len(frame) <= MAX_FRAME_BYTES
        assert b'"OK"' in raw_exchange(ctx, server.endpoint, [frame])
        grown_mb = (rss_kb(pid) - before) / 1024
    assert grown_mb < 50, f"the worker grew by {grown_mb:.0f} MB"


def test_a_thousand_idle_connections_do_not_lock_clients_out(tmp_path: Path) -> None:
    """Under the common soft limit of 1,024 open files, 1,100 TCP connections that never
    send a handshake used to take every descriptor; the server raises its limit to the hard
    one and drops connections that do not finish the handshake."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"the hard limit on open files ({hard}) leaves no room above 1,024")
    if soft < 2500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    db = write_catalog(tmp_path / "fds.json", 20)
    server = ServerProcess(db, command=[
        "sh", "-c", f'ulimit -Sn 1024 && exec "{sys.executable}" -m libsrv serve --port 0 '
        f'--workers 2 --db "{db}" --quiet']).start()
    idle: list[socket.socket] = []
    try:
        port = int(server.endpoint.rsplit(":", 1)[1])
        for _ in range(1100):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        with LibraryClient(server.endpoint, timeout=5, retries=1) as lib:
            assert lib.ping().success
            assert lib.loan_isbn(isbn_for(0), "Ana").success
    finally:
        for sock in idle:
            sock.close()
        stopped = server.stop()
    assert stopped == 0


STILL_SECONDS = 2.0  # a server whose count stands still this long has worked through its queues


@pytest.mark.parametrize("workers", SHAPES)
def test_clients_that_flood_and_never_read_cannot_grow_the_server_unbounded(
        tmp_path: Path, workers: int) -> None:
    """Ten DEALER clients send thousands of full catalog pages (about 200 KB each) and read no
    reply. Each connection's queues are bounded (docs/reliability.md: about 6 MB), so the
    server's memory stays within that, and a well-behaved client is served meanwhile."""
    from libsrv_bench.procstat import rss_mb

    db = write_catalog(tmp_path / "flood.json", 1000)
    server = ServerProcess(db, workers=workers, quiet=True).start()
    ctx = zmq.Context()
    floods = []
    try:
        with LibraryClient(server.endpoint, timeout=5, retries=0) as lib:
            pids = {server.pid, *lib.stats().raw["stats"]["worker_pids"]} - {0}
        before = rss_mb(list(pids))
        page = json.dumps({"action": "catalog", "limit": 1000}).encode()
        for _ in range(10):
            sock = ctx.socket(zmq.DEALER)
            sock.linger = 0
            sock.rcvhwm = 1  # it reads nothing: let the replies back up to the server at once
            sock.sndhwm = 0
            sock.connect(server.endpoint)
            floods.append(sock)
        sent = 0
        for _ in range(1200):
            for sock in floods:
                with contextlib.suppress(zmq.Again):  # its own queue is full: next one
                    sock.send_multipart([b"", page], zmq.NOBLOCK)
                    sent += 1
        assert sent == 12000
        peak = before
        # the server works through what it took in, then stops taking more (its bound): watch
        # until its request count has stood still for STILL_SECONDS, at most 20 s
        deadline, counted, still_since = time.monotonic() + 20, -1, time.monotonic()
        while time.monotonic() < deadline:
            with LibraryClient(server.endpoint, timeout=5, retries=0) as lib:
                assert lib.query_isbn(isbn_for(1)).success
                pages = lib.stats().raw["stats"]["by_action"].get("catalog", {})
            served = sum(pages.values())  # the floods' requests it has answered
            peak = max(peak, rss_mb(list(pids)))
            if served != counted:
                counted, still_since = served, time.monotonic()
            elif time.monotonic() - still_since > STILL_SECONDS:
                break
        assert peak - before < 10 * 6 + 60, (before, peak)
    finally:
        for sock in floods:
            sock.close()
        ctx.term()
        stopped = server.stop()
    assert stopped == 0
