"""The compiled data path (libsrv/data_path.c) driven in-process, without worker processes:
inproc sockets stand for the clients and the workers, and the test plays the Python side of
the control pipe. The same rules as tests/test_broker_core.py checks for `BrokerState`:
credits, the worker with the most room, re-sends, MAX_ATTEMPTS, stuck kills, spoofed and
out-of-turn worker messages, refused frames, the per-connection bounds, stopping.
Milliseconds each; the process-level tests (test_broker*.py) run both data paths."""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libsrv.broker_core import MAX_ATTEMPTS, READY, WAITING
from libsrv.data_path_build import MAX_ASKS, DataPathUnavailable, build, chosen, load
from libsrv.peers import PEER_IN_PROGRESS

pytestmark = pytest.mark.fast

RECV_MS = 2000
_names = itertools.count()


class Rig:
    """A data path on inproc sockets: `client()` and `worker()` give sockets to play with,
    `pipe` is the Python side of the control pipe."""

    def __init__(self, worker_timeout: float = 30.0) -> None:
        self.ctx = zmq.Context()
        n = next(_names)
        self.front_endpoint, self.back_endpoint = f"inproc://front-{n}", f"inproc://back-{n}"
        self.frontend = self.ctx.socket(zmq.ROUTER)
        self.backend = self.ctx.socket(zmq.ROUTER)
        for sock in (self.frontend, self.backend):
            sock.linger = 0
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.frontend.bind(self.front_endpoint)
        self.backend.bind(self.back_endpoint)
        self.pipe, self._c_end = self.ctx.socket(zmq.PAIR), self.ctx.socket(zmq.PAIR)
        for end in (self.pipe, self._c_end):
            end.linger = 0
            end.sndhwm = end.rcvhwm = 0  # as libsrv.broker_compiled sets them
        self.pipe.bind(f"inproc://pipe-{n}")
        self._c_end.connect(f"inproc://pipe-{n}")
        self.sockets: list[zmq.Socket] = []
        self.returned = threading.Event()
        run = load().libsrv_data_path_run

        def loop() -> None:
            run(self.frontend.underlying, self.backend.underlying, self._c_end.underlying,
                worker_timeout, 20, 5)
            self.returned.set()

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def client(self, identity: bytes | None = None) -> zmq.Socket:
        sock = self._socket(zmq.DEALER, identity)
        sock.connect(self.front_endpoint)
        return sock

    def worker(self, identity: bytes, credits: int = 4, row: int = 0,
               ready: bool = True) -> zmq.Socket:
        self.pipe.send_multipart([b"START", str(row).encode(), identity])
        sock = self._socket(zmq.DEALER, identity)
        sock.connect(self.back_endpoint)
        if ready:
            sock.send_multipart([b"", READY, str(credits).encode()])
            assert self.said() == [b"READY", identity]
        return sock

    def _socket(self, kind: int, identity: bytes | None) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.linger = 0
        if identity is not None:
            sock.setsockopt(zmq.IDENTITY, identity)
        self.sockets.append(sock)
        return sock

    def said(self) -> list[bytes]:
        """The next message the data path sends on the control pipe."""
        return recv(self.pipe)

    def close(self) -> None:
        self.pipe.send(b"ABORT")
        assert self.returned.wait(5), "the data path did not return on ABORT"
        for sock in [*self.sockets, self.frontend, self.backend, self.pipe, self._c_end]:
            sock.close()
        self.ctx.term()


def recv(sock: zmq.Socket, timeout_ms: int = RECV_MS) -> list[bytes]:
    if not sock.poll(timeout_ms):
        pytest.fail(f"nothing received in {timeout_ms} ms")
    return sock.recv_multipart()


def nothing(sock: zmq.Socket, ms: int = 100) -> bool:
    return not sock.poll(ms)


def request(n: int = 0) -> list[bytes]:
    return [b"", json.dumps({"action": "ping", "id": f"r{n}"}).encode()]


def answer(worker: zmq.Socket, body: bytes = b"reply") -> list[bytes]:
    """Take one request on `worker` and answer it; returns what it got [peer, key, request]."""
    got = recv(worker)
    worker.send_multipart([got[0], got[1], body + got[2][-4:]])
    return got


@pytest.fixture()
def rig():
    try:
        load()
    except DataPathUnavailable as error:
        pytest.skip(f"no compiled data path here: {error}")
    made: list[Rig] = []

    def make(**kwargs) -> Rig:
        made.append(Rig(**kwargs))
        return made[-1]

    yield make
    for one in made:
        one.close()


def test_a_request_reaches_a_ready_worker_and_its_reply_the_right_client(rig) -> None:
    r = rig()
    worker = r.worker(b"w1")
    alice, bob = r.client(b"alice"), r.client(b"bob")
    alice.send_multipart(request(1))
    bob.send_multipart(request(2))
    got = [recv(worker), recv(worker)]
    assert sorted(g[0] for g in got) == [b"alice", b"bob"]
    assert all(len(g) == 3 and len(g[1]) == 16 for g in got)  # [peer, key, request]
    for peer, key, _ in got:
        worker.send_multipart([peer, key, b"to " + peer])
    assert recv(alice) == [b"", b"to alice"]
    assert recv(bob) == [b"", b"to bob"]


def test_nothing_goes_to_a_worker_before_it_is_ready(rig) -> None:
    r = rig()
    worker = r.worker(b"w1", ready=False)
    client = r.client()
    client.send_multipart(request())
    assert nothing(worker)
    worker.send_multipart([b"", READY, b"4"])
    assert r.said() == [b"READY", b"w1"]
    assert recv(worker)[2] == request()[1]


def test_a_worker_gets_no_more_than_its_credits_until_it_answers(rig) -> None:
    r = rig()
    worker = r.worker(b"w1", credits=2)
    clients = [r.client() for _ in range(5)]
    for n, client in enumerate(clients):
        client.send_multipart(request(n))
    first = [recv(worker), recv(worker)]
    assert nothing(worker)
    worker.send_multipart([first[0][0], first[0][1], b"done"])
    assert recv(worker)  # the third, now that a credit came back
    assert nothing(worker)  # and only one: a reply gives one credit back


def test_requests_go_to_the_worker_with_most_room(rig) -> None:
    r = rig()
    busy = r.worker(b"busy", credits=1, row=0)
    free = r.worker(b"free", credits=3, row=1)
    clients = [r.client() for _ in range(4)]
    for n, client in enumerate(clients):
        client.send_multipart(request(n))
    got_free = [recv(free) for _ in range(3)]
    got_busy = recv(busy)
    assert len(got_free) == 3 and got_busy


def test_a_dead_workers_requests_are_sent_again_then_answered_internal(rig) -> None:
    r = rig()
    first = r.worker(b"w1", credits=4, row=0)
    client = r.client(b"c")
    client.send_multipart(request(7))
    sent = recv(first)
    r.pipe.send_multipart([b"DIED", b"w1"])
    second = r.worker(b"w2", row=0)
    again = recv(second)
    assert again == sent  # the same key: a re-sent write is answered, not applied twice
    assert MAX_ATTEMPTS == 2
    r.pipe.send_multipart([b"DIED", b"w2"])
    kind, reason, *msg = r.said()
    assert (kind, reason, msg) == (b"INTERNAL", b"died", [b"c", *request(7)])
    r.pipe.send_multipart([b"ANSWER", b"1", b"c", b"", b"internal"])
    assert recv(client) == [b"", b"internal"]


def test_a_worker_that_answers_nothing_is_reported_stuck(rig) -> None:
    r = rig(worker_timeout=0.2)
    worker = r.worker(b"w1")
    idle = r.worker(b"idle", row=1)
    assert nothing(r.pipe, 400)  # holding nothing, no worker is stuck
    r.client().send_multipart(request())
    holder, other = (worker, idle) if worker.poll(RECV_MS) else (idle, worker)
    ident = b"w1" if holder is worker else b"idle"
    assert r.said() == [b"KILL", ident]
    r.client().send_multipart(request(2))
    assert recv(other)  # the killed worker gets nothing more


def test_a_waiting_worker_is_not_stuck(rig) -> None:
    r = rig(worker_timeout=0.3)
    worker = r.worker(b"w1")
    r.client().send_multipart(request())
    recv(worker)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        worker.send_multipart([b"", WAITING])
        assert nothing(r.pipe, 100)


def test_worker_messages_out_of_turn_change_nothing(rig) -> None:
    r = rig()
    worker = r.worker(b"w1", credits=1)
    worker.send_multipart([b"", READY, b"100"])  # a second READY: no new credits
    assert r.said()[0] == b"WARN"
    worker.send_multipart([b"someone", b"k" * 16, b"made up"])  # a key it was not given
    assert r.said()[0] == b"WARN"
    worker.send_multipart([b"", b"HELLO"])  # a shape nobody sends
    assert r.said()[0] == b"WARN"
    clients = [r.client() for _ in range(2)]
    for n, client in enumerate(clients):
        client.send_multipart(request(n))
    recv(worker)
    assert nothing(worker)  # still one credit


def test_a_client_named_like_control_is_served_like_any_other(rig) -> None:
    r = rig()
    worker = r.worker(b"w1", credits=2)
    for name in (WAITING, READY):
        client = r.client(name)
        client.send_multipart(request())
        answer(worker)
        assert recv(client)[0] == b""


def test_a_request_of_several_frames_is_refused_and_one_without_envelope_dropped(rig) -> None:
    r = rig()
    worker = r.worker(b"w1")
    client = r.client(b"c")
    client.send_multipart([b"", b"{}", b"more", b"and more"])
    assert r.said() == [b"REFUSE", b"3", b"c", b""]
    r.pipe.send_multipart([b"ANSWER", b"0", b"c", b"", b"refused"])
    assert recv(client) == [b"", b"refused"]
    client.send_multipart([b"no envelope"])
    client.send_multipart(request())
    assert recv(worker)[2] == request()[1]
    assert nothing(r.pipe)


def test_messages_of_many_frames_are_read_whole_and_refused(rig) -> None:
    """Of a message longer than any the path keeps, the rest is read and dropped: a client's
    is refused with its full count, a worker's ignored."""
    r = rig()
    worker = r.worker(b"w1")
    client = r.client(b"c")
    client.send_multipart([b"", b"{}", *[b"x"] * 38])
    assert r.said() == [b"REFUSE", b"39", b"c", b""]
    client.send_multipart([b"h1", b"h2", b"h3", b"h4", b"", b"{}"])  # too many hops
    worker.send_multipart([b"c", b"k" * 16, *[b"y"] * 38])
    assert r.said()[0] == b"WARN"
    client.send_multipart(request())
    assert recv(worker)[0] == b"c"


def test_a_flood_of_refusable_messages_waits_for_the_python_side(rig) -> None:
    """While the Python side owes MAX_ASKS refusals, no more clients are read: the flood
    waits in ZeroMQ's queues, and every message is refused in the end."""
    r = rig()
    r.worker(b"w1", credits=1000)  # room enough to read the whole flood at once
    client = r.client(b"c")
    flood = MAX_ASKS + 300
    for _ in range(flood):
        client.send_multipart([b"", b"{}", b"more"], zmq.NOBLOCK)
    asked = []
    while r.pipe.poll(300):
        asked.append(r.pipe.recv_multipart())
    assert len(asked) == MAX_ASKS and all(a[0] == b"REFUSE" for a in asked)
    refused = 0
    while refused < flood:
        for _ in asked:
            r.pipe.send_multipart([b"ANSWER", b"0", b"c", b"", b"refused"])
        refused += len(asked)
        asked = [r.said() for _ in range(min(MAX_ASKS, flood - refused))]
    replies = [recv(client) for _ in range(flood)]
    assert len(replies) == flood and nothing(r.pipe)


def test_one_connection_has_at_most_its_share_in_progress_and_loses_nothing(rig) -> None:
    r = rig()
    worker = r.worker(b"w1", credits=100)
    gateway = r.client(b"gw")
    total = PEER_IN_PROGRESS * 3
    for n in range(total):
        gateway.send_multipart(request(n))
    held = [recv(worker) for _ in range(PEER_IN_PROGRESS)]
    assert nothing(worker)  # the rest wait, not yet accepted
    answered = 0
    while held:
        peer, key, _ = held.pop(0)
        worker.send_multipart([peer, key, b"ok"])
        answered += 1
        if worker.poll(50):
            held.append(recv(worker))
    replies = [recv(gateway) for _ in range(total)]
    assert answered == total and len(replies) == total


def test_with_no_worker_to_start_requests_are_answered_internal(rig) -> None:
    r = rig()
    r.pipe.send_multipart([b"UNSTAFFED", b"1"])
    client = r.client(b"c")
    client.send_multipart(request(3))
    kind, reason, *msg = r.said()
    assert (kind, reason, msg) == (b"INTERNAL", b"unstaffed", [b"c", *request(3)])


def test_stop_waits_for_replies_in_flight_and_takes_nothing_new(rig) -> None:
    r = rig()
    worker = r.worker(b"w1")
    client = r.client(b"c")
    client.send_multipart(request())
    got = recv(worker)
    r.pipe.send(b"STOP")
    client.send_multipart(request(2))
    assert not r.returned.wait(0.2)  # a reply is owed
    worker.send_multipart([got[0], got[1], b"last"])
    assert recv(client) == [b"", b"last"]
    assert r.returned.wait(2)
    assert nothing(worker)


# A message of any shape: frames of any length (empty ones included, which is what envelopes
# and control messages are made of), a few of them named like the words the path looks for.
_frame = st.binary(max_size=40) | st.sampled_from([b"", READY, WAITING, b"4", b"-1",
                                                   b"99999999999999999999", b"k" * 16])
_message = st.lists(_frame, min_size=1, max_size=12)
_events = st.lists(st.tuples(st.sampled_from(["client", "worker", "valid"]), _message),
                   max_size=25)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=_events)
def test_fuzz_no_message_of_any_shape_stops_the_path_from_serving(rig, events) -> None:
    """Clients and a worker send messages of any shape among valid requests; then a valid
    request from a new client is still served, and answered to that client."""
    r = rig()
    worker = r.worker(b"w1", credits=8)
    client = r.client()
    for who, frames in events:
        if who == "client":
            client.send_multipart(frames)
        elif who == "worker":
            worker.send_multipart(frames)
        else:
            client.send_multipart(request())
    while worker.poll(20):  # answer what reached the worker, however it looks
        got = worker.recv_multipart()
        if len(got) == 3:
            worker.send_multipart([got[0], got[1], b"ok"])
    probe = r.client(b"probe")
    probe.send_multipart(request(99))
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if worker.poll(50):
            got = worker.recv_multipart()
            if got[0] == b"probe":
                worker.send_multipart([got[0], got[1], b"served"])
                break
            worker.send_multipart([got[0], got[1], b"ok"])
    else:
        pytest.fail("the probe never reached the worker")
    assert recv(probe) == [b"", b"served"]
    assert not r.returned.is_set()


def test_without_a_compiler_auto_is_python_and_compiled_is_an_error(monkeypatch,
                                                                   tmp_path) -> None:
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    load.cache_clear()
    try:
        with pytest.raises(DataPathUnavailable, match="no C compiler"):
            build()
        library, said = chosen("auto")
        assert library is None and "no C compiler" in said
        with pytest.raises(DataPathUnavailable, match="cannot be used"):
            chosen("compiled")
        assert chosen("python") == (None, "data path: Python (as asked)")
    finally:
        load.cache_clear()
