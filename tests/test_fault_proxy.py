"""The fault-injecting proxy: its decisions without sockets (libsrv_bench.netfaults), then the
proxy process between real REQ clients and a real REP server, one fault kind at a time."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest
import zmq

from libsrv_bench.faults import Fault, FaultError, parse_fault
from libsrv_bench.netfaults import (
    IDLE,
    REORDER_HOLD_MS,
    REPLIES,
    REQUESTS,
    LinkFaults,
    NetFault,
    NetFaultError,
    combine,
    parse_arg,
)
from libsrv_bench.proxy import FaultProxy
from tests.helpers import wait_until

pytestmark = pytest.mark.fast

REPLY_MS = 2000


# ---------------------------------------------------------------- decisions, no sockets


@pytest.mark.parametrize(("text", "fault"), [
    ("delay@11+2:20ms", Fault("delay", 11.0, 2.0, "20ms")),
    ("loss@14+2:5%,replies", Fault("loss", 14.0, 2.0, "5%,replies")),
    ("partition@8+2", Fault("partition", 8.0, 2.0))])
def test_a_network_fault_is_read_as_written(text: str, fault: Fault) -> None:
    assert parse_fault(text) == fault
    assert parse_fault(str(fault)) == fault


@pytest.mark.parametrize(("text", "says"), [
    ("partition@8", "needs a duration"), ("delay@1+1:20", "milliseconds"),
    ("loss@1+1:150%", "share of messages"), ("loss@1+1:5%,sideways", "requests or replies"),
    ("kill-worker@3:now", "takes no :ARG"), ("partition@1+1:5%", "takes no value")])
def test_a_network_fault_that_cannot_be_read_says_why(text: str, says: str) -> None:
    with pytest.raises(FaultError, match=says):
        parse_fault(text)


def test_what_each_fault_does_to_one_message() -> None:
    rng = random.Random(1)
    assert IDLE.plan(rng) == [0.0]
    assert LinkFaults(partition=True).plan(rng) == []
    assert LinkFaults(loss=1.0).plan(rng) == []
    assert LinkFaults(duplicate=1.0, delay_ms=5).plan(rng) == [5.0, 5.0]
    assert LinkFaults(duplicate=1.0).plan(rng, duplicable=False) == [0.0]
    assert LinkFaults(reorder=1.0).plan(rng) == [REORDER_HOLD_MS]
    waits = [w for _ in range(500) for w in LinkFaults(delay_ms=20, jitter_ms=5).plan(rng)]
    assert 15 <= min(waits) < 16 and 24 < max(waits) <= 25
    lost = sum(not LinkFaults(loss=0.2).plan(rng) for _ in range(5000))
    assert 800 < lost < 1200


def test_overlapping_faults_combine_per_direction() -> None:
    links = combine([parse_arg("delay", "20ms"), parse_arg("delay", "50ms~5ms,replies"),
                     parse_arg("loss", "10%,requests"), parse_arg("partition", ",replies")])
    assert links[REQUESTS] == LinkFaults(delay_ms=20, loss=0.1)
    assert links[REPLIES] == LinkFaults(delay_ms=50, jitter_ms=5, partition=True)
    assert combine([]) == {REQUESTS: IDLE, REPLIES: IDLE}
    assert parse_arg("duplicate", "10%") == NetFault("duplicate", 0.1, directions=(REQUESTS,))
    with pytest.raises(NetFaultError):
        parse_arg("duplicate", "10%,replies")


# ---------------------------------------------------------------- the proxy, real sockets


class EchoServer:
    """A REP socket on a thread that answers b"re:" + each request and keeps what it saw."""

    def __init__(self, ctx: zmq.Context) -> None:
        self.sock = ctx.socket(zmq.REP)
        self.sock.linger = 0
        self.endpoint = f"tcp://127.0.0.1:{self.sock.bind_to_random_port('tcp://127.0.0.1')}"
        self.seen: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if self.sock.poll(50):
                request = self.sock.recv()
                self.seen.append(request)
                self.sock.send(b"re:" + request)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sock.close()


@pytest.fixture(scope="module")
def proxy_and_server() -> Iterator[tuple[FaultProxy, EchoServer]]:
    """One proxy process for the module (spawning one takes most of a second)."""
    context = zmq.Context()
    server = EchoServer(context)
    try:
        with FaultProxy(server.endpoint) as proxy:
            yield proxy, server
    finally:
        server.close()
        context.destroy(linger=0)


@pytest.fixture
def proxied(proxy_and_server: tuple[FaultProxy, EchoServer]
            ) -> Iterator[tuple[FaultProxy, EchoServer]]:
    """The module's proxy with no fault on and the server's memory empty."""
    proxy, server = proxy_and_server
    proxy.set_links(combine([]))
    server.seen.clear()
    yield proxy, server
    proxy.set_links(combine([]))


def ask(ctx: zmq.Context, endpoint: str, body: bytes,
        timeout_ms: int = REPLY_MS) -> tuple[bytes | None, float]:
    """One request on a fresh REQ socket: (the reply or None, milliseconds waited)."""
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        start = time.perf_counter()
        sock.send(body)
        reply = sock.recv() if sock.poll(timeout_ms, zmq.POLLIN) else None
        return reply, (time.perf_counter() - start) * 1000
    finally:
        sock.close()


def test_an_idle_proxy_passes_everything_through_libzmqs_own_proxy(ctx: zmq.Context) -> None:
    server = EchoServer(ctx)
    try:
        with FaultProxy(server.endpoint) as proxy:
            _idle_then_faulty_then_idle(ctx, proxy)
    finally:
        server.close()
    assert proxy.stats["c_proxy_turns"] >= 2  # back in the C proxy once the fault was off
    assert proxy.stats["passed_requests"] == 1  # only the delayed one took the Python loop


def _idle_then_faulty_then_idle(ctx: zmq.Context, proxy: FaultProxy) -> None:
    assert [ask(ctx, proxy.endpoint, b"%d" % n)[0] for n in range(20)] == \
        [b"re:%d" % n for n in range(20)]
    proxy.set_links(combine([parse_arg("delay", "1ms")]))
    assert ask(ctx, proxy.endpoint, b"slow")[0] == b"re:slow"
    proxy.set_links(combine([]))
    wait_until(proxy.in_c_proxy, message="the proxy back in libzmq's proxy")
    assert ask(ctx, proxy.endpoint, b"again")[0] == b"re:again"


@pytest.mark.parametrize(("arg", "reaches_server"), [
    (",requests", False), (",replies", True), ("", False)])
def test_a_partition_passes_nothing_in_its_directions(
        ctx: zmq.Context, proxied: tuple[FaultProxy, EchoServer], arg: str,
        reaches_server: bool) -> None:
    proxy, server = proxied
    proxy.set_links(combine([parse_arg("partition", arg)]))
    reply, _ = ask(ctx, proxy.endpoint, b"cut", timeout_ms=300)
    assert reply is None
    assert (b"cut" in server.seen) is reaches_server
    proxy.set_links(combine([]))
    assert ask(ctx, proxy.endpoint, b"healed")[0] == b"re:healed"


def test_loss_drops_about_the_share_asked(ctx: zmq.Context,
                                          proxied: tuple[FaultProxy, EchoServer]) -> None:
    proxy, server = proxied
    proxy.set_links(combine([parse_arg("loss", "50%,requests")]))
    replies = [ask(ctx, proxy.endpoint, b"%d" % n, timeout_ms=100)[0] for n in range(24)]
    answered = [r for r in replies if r is not None]
    assert 4 <= len(answered) <= 20
    assert len(server.seen) == len(answered)  # lost on the way there: never served


def test_a_delay_holds_each_message_at_least_that_long(
        ctx: zmq.Context, proxied: tuple[FaultProxy, EchoServer]) -> None:
    proxy, _ = proxied
    proxy.set_links(combine([parse_arg("delay", "40ms,requests"),
                             parse_arg("delay", "30ms,replies")]))
    for n in range(5):
        reply, waited = ask(ctx, proxy.endpoint, b"%d" % n)
        assert reply == b"re:%d" % n and waited >= 70


def test_a_duplicated_request_is_served_twice_and_answered_once(
        ctx: zmq.Context, proxied: tuple[FaultProxy, EchoServer]) -> None:
    proxy, server = proxied
    proxy.set_links(combine([parse_arg("duplicate", "100%"), parse_arg("delay", "5ms")]))
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    sock.connect(proxy.endpoint)
    try:
        for n in range(10):  # one socket: a stale duplicate's reply must never answer the next
            sock.send(b"%d" % n)
            assert sock.poll(REPLY_MS, zmq.POLLIN)
            assert sock.recv() == b"re:%d" % n
    finally:
        sock.close()
    assert sorted(server.seen) == sorted([b"%d" % n for n in range(10)] * 2)


@pytest.mark.parametrize("reorder", ["", "50%"])
def test_reordering_lets_later_requests_overtake(ctx: zmq.Context,
                                                proxied: tuple[FaultProxy, EchoServer],
                                                reorder: str) -> None:
    """One DEALER connection keeps its messages in order end to end, unless the proxy holds
    some back; every request is still answered once."""
    proxy, server = proxied
    if reorder:
        proxy.set_links(combine([parse_arg("reorder", f"{reorder},requests")]))
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(proxy.endpoint)
    sent = [b"%02d" % n for n in range(40)]
    try:
        for body in sent:
            sock.send_multipart([b"", body])
        replies = []
        for _ in sent:
            assert sock.poll(REPLY_MS, zmq.POLLIN)
            replies.append(sock.recv_multipart()[-1])
    finally:
        sock.close()
    assert sorted(replies) == [b"re:" + body for body in sent]
    assert sorted(server.seen) == sent
    assert (server.seen != sent) is bool(reorder)
