"""The fault-injecting proxy: a process between the bench's clients and the target server.

Clients connect to `FaultProxy.endpoint`, a ROUTER; each request goes on to the target through
a DEALER and each reply comes back, as with `zmq.proxy` (a REP socket, and the kit's servers,
answer along the routing frame the hop adds). While no fault is on, libzmq's own C proxy
passes the messages, so an idle proxy costs what `zmq.proxy` costs (measured in docs/bench.md).
When the bench sets faults (`FaultProxy.set_links`), the proxy's Python loop takes over:
`libsrv_bench.netfaults` says what becomes of each message, delayed ones wait in a heap, and
the C proxy takes over again once the faults are off and no tagged request is owed a reply.

In the Python loop each request carries one more routing frame, a sequence number, so that
the proxy knows which request a reply answers: a duplicated request is answered twice by the
server, and the client gets the first reply only (a REQ socket takes one), so what a duplicate
tests is whether the server applies one request twice. A reply to a request the client no
longer waits for (lost, or answered already) is dropped, as the client's REQ socket would.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import multiprocessing
import random
import threading
import time
from collections import Counter
from dataclasses import asdict
from typing import Any

import zmq

from libsrv.wire import NOBLOCK, receiver, sender
from libsrv_bench.netfaults import DIRECTIONS, IDLE, REPLIES, REQUESTS, LinkFaults

START_SECONDS = 30.0
CONTROL_TIMEOUT_MS = 5000
STOP_TIMEOUT_MS = 20000
OWED_SECONDS = 10.0  # a tagged request still unanswered after this is forgotten (it was lost)
IDLE_POLL_MS = 100


class ProxyError(RuntimeError):
    """The proxy process did not start or does not answer; the message says which."""


class _Shared:
    """What the control thread tells the passing loop."""

    def __init__(self) -> None:
        self.links: dict[str, LinkFaults] = dict.fromkeys(DIRECTIONS, IDLE)
        self.stop = False
        self.in_c = False  # libzmq's proxy is passing the messages (no fault on)
        self.done = threading.Event()
        self.stats: Counter[str] = Counter()


def _control(sock: zmq.Socket, steer: zmq.Socket, shared: _Shared) -> None:
    """Answer the bench's commands: ``{"links": {direction: LinkFaults fields}}`` or
    ``{"stop": true}`` (answered with the proxy's counts once it has stopped passing)."""
    while True:
        try:
            command = json.loads(sock.recv())
        except ValueError:
            sock.send(b'{"ok": false}')
            continue
        if command.get("mode"):
            sock.send(json.dumps({"ok": True, "c": shared.in_c}).encode())
            continue
        if command.get("stop"):
            shared.stop = True
            steer.send(b"TERMINATE")
            shared.done.wait(30)
            sock.send(json.dumps({"ok": True, "stats": dict(shared.stats)}).encode())
            return
        links = {d: LinkFaults(**command.get("links", {}).get(d, {})) for d in DIRECTIONS}
        shared.links = links
        steer.send(b"TERMINATE")  # out of the C proxy, if there; else a wake-up
        sock.send(b'{"ok": true}')


class _Passing:
    """The Python loop: faults applied to every message, until they are off again."""

    def __init__(self, front: zmq.Socket, back: zmq.Socket, steer: zmq.Socket,
                 shared: _Shared, seed: int) -> None:
        self.shared, self.rng = shared, random.Random(seed)
        self.read_front, self.read_back = receiver(front, NOBLOCK), receiver(back, NOBLOCK)
        self.to_front, self.to_back = sender(front, NOBLOCK), sender(back, NOBLOCK)
        self.poller = zmq.Poller()
        for sock in (front, back, steer):
            self.poller.register(sock, zmq.POLLIN)
        self.front, self.back = front, back
        self.held: list[tuple[float, int, bool, list[bytes]]] = []  # (due, n, to_back, frames)
        # client -> {sequence: sent at} (a REQ has one request out; a DEALER may have many)
        self.owed: dict[bytes, dict[bytes, float]] = {}
        self.numbers = itertools.count()
        self.next_forget = 0.0
        self.read_steer = receiver(steer, NOBLOCK)
        self.stats = shared.stats

    def quiet(self) -> bool:
        links = self.shared.links
        return all(links[d].idle for d in DIRECTIONS) and not self.held and not self.owed

    def run(self) -> None:
        """Until the faults are off and nothing is held or owed (or the proxy stops)."""
        while not self.shared.stop and not self.quiet():
            now = time.monotonic()
            while self.held and self.held[0][0] <= now:
                _, _, to_back, frames = heapq.heappop(self.held)
                self._send(to_back, frames)
            self._forget_lost(now)
            # rounded up: a delay may end up to a millisecond late, but the loop never spins
            # on the cores the server needs
            wait = IDLE_POLL_MS if not self.held else \
                max(0, math.ceil((self.held[0][0] - time.monotonic()) * 1000))
            for sock, _ in self.poller.poll(wait):
                if sock is self.front:
                    self._drain(self.read_front, self._request)
                elif sock is self.back:
                    self._drain(self.read_back, self._reply)
                else:
                    self._drain(self.read_steer, lambda _: None)

    @staticmethod
    def _drain(read: Any, handle: Any) -> None:
        for _ in range(256):
            try:
                handle(read())
            except zmq.Again:
                return

    def _send(self, to_back: bool, frames: list[bytes]) -> None:
        try:
            (self.to_back if to_back else self.to_front)(frames)
        except zmq.ZMQError:  # a full queue or a client gone: the network lost it
            self.stats["undeliverable"] += 1

    def _pass(self, to_back: bool, frames: list[bytes], link: LinkFaults,
              duplicable: bool) -> int:
        delays = link.plan(self.rng, duplicable)
        kind = "requests" if to_back else "replies"
        if not delays:
            self.stats[f"lost_{kind}"] += 1
        if len(delays) > 1:
            self.stats["duplicated_requests"] += 1
        now = time.monotonic()
        for delay in delays:
            if delay <= 0:
                self._send(to_back, frames)
            else:
                heapq.heappush(self.held, (now + delay / 1000, next(self.numbers), to_back,
                                           frames))
        self.stats[f"passed_{kind}"] += bool(delays)
        return len(delays)

    def _request(self, frames: list[bytes]) -> None:
        if len(frames) < 3:
            return
        client = frames[0]
        sequence = b"%d" % next(self.numbers)
        if self._pass(True, [client, sequence, *frames[1:]], self.shared.links[REQUESTS],
                      duplicable=True):
            self.owed.setdefault(client, {})[sequence] = time.monotonic()

    def _reply(self, frames: list[bytes]) -> None:
        client = frames[0]
        if len(frames) > 2 and frames[1] != b"":  # tagged here: is it the one owed?
            owed = self.owed.get(client, {})
            if owed.pop(frames[1], None) is None:
                self.stats["dropped_replies"] += 1  # a duplicate's, or a forgotten one's
                return
            if not owed:
                del self.owed[client]
            frames = [client, *frames[2:]]
        self._pass(False, frames, self.shared.links[REPLIES], duplicable=False)

    def _forget_lost(self, now: float) -> None:
        if self.owed and now >= self.next_forget:
            self.next_forget = now + 1.0
            for client, sent in list(self.owed.items()):
                for sequence, at in list(sent.items()):
                    if now - at > OWED_SECONDS:
                        del sent[sequence]
                if not sent:
                    del self.owed[client]


def _serve(target: str, seed: int, conn: Any) -> None:
    ctx = zmq.Context()
    front, back = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    control = ctx.socket(zmq.REP)
    steer_in, steer_out = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    for sock in (front, back, control, steer_in, steer_out):
        sock.linger = 0
    port = front.bind_to_random_port("tcp://127.0.0.1")
    control_port = control.bind_to_random_port("tcp://127.0.0.1")
    back.connect(target)
    steer_in.bind("inproc://steer")
    steer_out.connect("inproc://steer")
    shared = _Shared()
    thread = threading.Thread(target=_control, args=(control, steer_out, shared), daemon=True)
    thread.start()
    conn.send((f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{control_port}"))
    passing = _Passing(front, back, steer_in, shared, seed)
    while not shared.stop:
        if passing.quiet():
            shared.stats["c_proxy_turns"] += 1
            shared.in_c = True
            zmq.proxy_steerable(front, back, None, steer_in)  # until a TERMINATE
            shared.in_c = False
        else:
            passing.run()
    shared.done.set()
    thread.join(10)
    for sock in (front, back, control, steer_in, steer_out):
        sock.close()
    ctx.term()


class FaultProxy:
    """The proxy process in front of `target`; `endpoint` is where clients connect.

    A context manager: the process starts on entry and stops on exit (`stats` then holds
    what it did: messages passed, lost, duplicated, replies dropped)."""

    def __init__(self, target: str, seed: int = 1) -> None:
        self.target, self.seed = target, seed
        self.endpoint = ""
        self.stats: dict[str, int] = {}
        self._process: Any = None
        self._ctx: zmq.Context | None = None
        self._control: zmq.Socket | None = None

    def __enter__(self) -> FaultProxy:
        spawn = multiprocessing.get_context("spawn")
        mine, theirs = spawn.Pipe()
        self._process = spawn.Process(target=_serve, args=(self.target, self.seed, theirs),
                                      daemon=True, name="bench-fault-proxy")
        self._process.start()
        deadline = time.monotonic() + START_SECONDS
        while not mine.poll(0.1):
            if not self._process.is_alive() or time.monotonic() > deadline:
                self._kill()
                raise ProxyError("the fault proxy did not start (see its error above)"
                                 if not self._process.is_alive() else
                                 f"the fault proxy did not start within {START_SECONDS:.0f} s")
        self.endpoint, control = mine.recv()
        self._ctx = zmq.Context()
        self._control = self._ctx.socket(zmq.REQ)
        self._control.linger = 0
        self._control.connect(control)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._process is not None and self._process.is_alive():
                answer = self._ask({"stop": True}, STOP_TIMEOUT_MS)
                self.stats = answer.get("stats", {})
            else:
                self.stats = {"error": "the fault proxy process had died"}
        except ProxyError as error:
            self.stats = {"error": str(error)}
        finally:
            self._kill()

    @property
    def pid(self) -> int:
        if self._process is None or self._process.pid is None:
            raise ProxyError("the fault proxy is not running")
        return int(self._process.pid)

    def in_c_proxy(self) -> bool:
        """Whether libzmq's own proxy passes the messages now (no fault on, nothing owed)."""
        return bool(self._ask({"mode": True})["c"])

    def set_links(self, links: dict[str, LinkFaults]) -> None:
        """What each direction does to messages from now on (`netfaults.combine`)."""
        self._ask({"links": {d: asdict(links.get(d, IDLE)) for d in DIRECTIONS}})

    def _ask(self, command: dict[str, Any], timeout_ms: int = CONTROL_TIMEOUT_MS
             ) -> dict[str, Any]:
        if self._control is None:
            raise ProxyError("the fault proxy is not running")
        self._control.send(json.dumps(command).encode())
        if not self._control.poll(timeout_ms, zmq.POLLIN):
            raise ProxyError("the fault proxy did not answer its control socket")
        return json.loads(self._control.recv())

    def _kill(self) -> None:
        if self._control is not None:
            self._control.close(linger=0)
            self._control = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None
        if self._process is not None:
            self._process.join(5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5)
