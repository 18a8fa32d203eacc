"""What a client or a gateway can do to the server's front socket, tried on a real server: a
routing id that looks like a worker's control message, many requests outstanding on one
connection, a request of many huge frames. Each is answered, and nobody else is hurt."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import zmq

from libsrv.generate import isbn_for, write_catalog
from libsrv_bench.procstat import rss_mb
from tests.helpers import SHAPES, client_for

# every test here runs on both of the broker's data paths (compiled and Python)
pytestmark = [pytest.mark.fast, pytest.mark.usefixtures("each_data_path")]


def _dealer(ctx: zmq.Context, endpoint: str, identity: bytes | None = None) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.rcvhwm = sock.sndhwm = 0  # the test's own queues never drop anything
    if identity is not None:
        sock.setsockopt(zmq.ROUTING_ID, identity)
    sock.connect(endpoint)
    return sock


def _request(n: int, action: str = "ping", **fields: object) -> list[bytes]:
    body = {"v": 1, "action": action, "id": f"r{n}", **fields}
    return [b"", json.dumps(body).encode()]


def _replies(sock: zmq.Socket, count: int, timeout: float = 15.0) -> list[dict]:
    """Up to `count` replies from a DEALER (envelope stripped), or fewer when `timeout` runs
    out: the caller says which were missing."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0 or not sock.poll(left_ms, zmq.POLLIN):
            break
        frames = sock.recv_multipart()
        got.append(json.loads(frames[-1]))
    return got


def _restarts(server) -> int:
    with client_for(server) as lib:
        return lib.stats().raw["stats"]["worker_restarts"]


@pytest.mark.parametrize("identity", [b"WAITING", b"READY"])
def test_a_client_named_like_a_control_message_is_answered_and_hurts_nobody(
        start_server, tmp_path: Path, ctx: zmq.Context, identity: bytes) -> None:
    server = start_server(write_catalog(tmp_path / "spoof.json", 20), workers=2,
                          args=["--worker-timeout", "3"])
    spoofer = _dealer(ctx, server.endpoint, identity)
    for n in range(8):
        spoofer.send_multipart(_request(n))
    replies = _replies(spoofer, 8)
    assert sorted(r.get("id") for r in replies) == [f"r{n}" for n in range(8)], replies
    # the workers' credits are intact: a burst from honest clients, more than the credits of
    # both workers together, is answered at once, and no worker was killed as stuck
    honest = _dealer(ctx, server.endpoint)
    for n in range(40):
        honest.send_multipart(_request(n, "query_isbn", isbn=isbn_for(n % 20)))
    answered = _replies(honest, 40, timeout=5.0)
    assert len(answered) == 40
    assert all(r["code"] == "OK" for r in answered)
    assert _restarts(server) == 0


@pytest.mark.parametrize("workers", SHAPES)
def test_a_gateway_keeping_many_requests_outstanding_gets_every_reply(
        start_server, tmp_path: Path, ctx: zmq.Context, workers: int) -> None:
    """A gateway multiplexing many clients on one DEALER: 64 queries kept outstanding until
    1,200 were sent (each reply lets another go). libzmq drops a ROUTER's or REP's reply to a
    peer whose queue is full, so a server that bursts replies into a queue of 16 lost some.
    A count, not a time: under the sanitizers on a busy machine a second once held 781."""
    server = start_server(write_catalog(tmp_path / "gateway.json", 100), workers=workers)
    gateway = _dealer(ctx, server.endpoint)
    total, sent = 1200, 0
    for _ in range(64):
        gateway.send_multipart(_request(sent, "query_isbn", isbn=isbn_for(sent % 100)))
        sent += 1
    answered: set[str] = set()
    while len(answered) < sent and gateway.poll(5000, zmq.POLLIN):
        answered.add(json.loads(gateway.recv_multipart()[-1])["id"])
        if sent < total:
            gateway.send_multipart(_request(sent, "query_isbn", isbn=isbn_for(sent % 100)))
            sent += 1
    missing = {f"r{n}" for n in range(sent)} - answered
    assert sent == total and not missing, \
        f"{len(missing)} of {sent} replies lost, e.g. {sorted(missing)[:5]}"


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _rss_mb(pid: int) -> float:
    return rss_mb([pid])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_request_of_many_huge_frames_is_refused_before_it_reaches_a_worker(
        start_server, tmp_path: Path, ctx: zmq.Context) -> None:
    server = start_server(write_catalog(tmp_path / "frames.json", 20), workers=2)
    with client_for(server) as lib:
        worker_pids = lib.stats().raw["stats"]["worker_pids"]
    workers_before = {pid: _rss_mb(pid) for pid in worker_pids}
    broker_before = _rss_mb(server.pid)
    frame = b"x" * (127 * 1024)
    senders = [_dealer(ctx, server.endpoint) for _ in range(4)]
    messages, frames_each = 4, 100  # 12.7 MB a message, 203 MB in all
    sent_mb = len(senders) * messages * frames_each * len(frame) / 2**20
    for sender in senders:
        for _ in range(messages):
            sender.send_multipart([b"", *[frame] * frames_each])
    for sender in senders:
        replies = _replies(sender, messages, timeout=30.0)
        assert len(replies) == messages
        assert all(r["code"] == "BAD_REQUEST" for r in replies), replies
    with client_for(server) as lib:
        assert lib.ping().success
    for pid, before in workers_before.items():
        assert _rss_mb(pid) - before < 10, "a worker was handed the huge message"
    # libzmq's I/O thread reads messages ahead of the broker's loop, as far as the loop's share
    # of a busy machine lets it fall behind: a peak of 4 or 5 of the 16 messages was seen with
    # the test tier running beside it. What must not happen is the broker holding them all.
    grown = _peak_rss_mb(server.pid) - broker_before
    assert grown < sent_mb / 2, f"the broker's peak grew by {grown:.0f} MB of {sent_mb:.0f}"
