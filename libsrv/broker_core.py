"""The broker's decisions, with no I/O: which worker gets a request, when a reply goes back,
when a worker is stuck or dead and what becomes of its requests, how much one client
connection may have in progress. In the spirit of h11: `BrokerState`'s methods take events
(a client's message, a worker's message, a worker started or died, the clock) and queue
actions (`Actions`: messages for workers and clients, workers to kill or start) that the loop
in `libsrv.broker` carries out. Tested without sockets or processes in tests/test_broker_core.py.

What crosses the broker, by shape (never by a value a client could choose):

- client to broker: ``[peer, b"", request]``, a REQ envelope, with up to MAX_HOPS routing frames
  before the empty one when proxies are in front (`libsrv.envelope`); anything else is refused
- broker to worker: ``[worker, peer, key, request]``
- worker to broker, a reply: ``[worker, peer, key, reply]`` (peer is never empty: ZeroMQ
  routing ids are at least one byte)
- worker to broker, control: ``[worker, b"", kind, *args]`` with kind READY (args: credits)
  or WAITING (a heartbeat while a write waits for a lock held elsewhere)
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from libsrv.envelope import reply_to, request_index
from libsrv.peers import PeerQueues
from libsrv.protocol import ProtocolError, parse_request
from libsrv.service import internal_reply_frame, refusal_frame

log = logging.getLogger("libsrv.server")

READY = b"READY"
WAITING = b"WAITING"
CONTROL = b""  # the frame that marks a worker's control message
# Requests a worker accepts ahead. More lets a worker answer a burst at one wake-up; fewer
# keeps what a dying or stuck worker holds small. Measured in docs/broker.md.
WORKER_CREDITS = 4
MAX_ATTEMPTS = 2  # a request that killed this many workers is answered INTERNAL
MAX_QUICK_DEATHS = 5  # workers dying before they are ready: give up instead of looping
STOP_GRACE_SECONDS = 2.0  # how long a stopping broker waits for replies in flight
NO_WORKER_ROOM = 100  # requests taken, to answer INTERNAL, while no worker could start
DIED_REASON = "the worker handling it died"
UNSTAFFED_REASON = "no worker process could be started; try again shortly"


def ready_message(credits: int = WORKER_CREDITS) -> list[bytes]:
    """What a worker sends first (to the broker's socket): it serves, with `credits` room."""
    return [CONTROL, READY, str(credits).encode()]


WAITING_MESSAGE = [CONTROL, WAITING]


class Phase(StrEnum):
    """Where a worker is in its life."""

    STARTING = "starting"  # process started, loading the catalog; has no credits
    SERVING = "serving"
    KILLED = "killed"  # killed as stuck; its death is still to be seen


class Event(StrEnum):
    READY = "ready"
    WAITING = "waiting"
    REPLY = "reply"
    STUCK = "stuck"
    DIED = "died"


GONE = None
# The legal transitions. An event not listed for a phase is a protocol violation: it is
# ignored (and logged), so nothing a worker sends out of turn can change credits or phases.
TRANSITIONS: dict[tuple[Phase, Event], Phase | None] = {
    (Phase.STARTING, Event.READY): Phase.SERVING,
    (Phase.STARTING, Event.DIED): GONE,
    (Phase.SERVING, Event.REPLY): Phase.SERVING,
    (Phase.SERVING, Event.WAITING): Phase.SERVING,
    (Phase.SERVING, Event.STUCK): Phase.KILLED,
    (Phase.SERVING, Event.DIED): GONE,
    (Phase.KILLED, Event.REPLY): Phase.KILLED,  # a reply racing the kill still goes back
    (Phase.KILLED, Event.WAITING): Phase.KILLED,
    (Phase.KILLED, Event.DIED): GONE,
}


class WorkersKeepDying(RuntimeError):
    """More than MAX_QUICK_DEATHS workers in a row died before they were ready."""


# A request the broker holds: the client's message, how many workers it was sent to.
_Request = tuple[list[bytes], int]


@dataclass
class Worker:
    row: int
    identity: bytes
    phase: Phase = Phase.STARTING
    credits: int = 0
    inflight: dict[bytes, _Request] = field(default_factory=dict)  # key: request, in order
    progress_at: float = 0.0  # last reply or heartbeat, or the dispatch that found it idle


@dataclass
class Actions:
    """What the loop must do, in this order: send to workers, send to clients, kill, spawn."""

    to_workers: list[list[bytes]] = field(default_factory=list)
    to_clients: list[list[bytes]] = field(default_factory=list)
    kill: list[bytes] = field(default_factory=list)  # worker identities
    spawn: list[tuple[int, bool]] = field(default_factory=list)  # (row, replaces a dead one)

    def __bool__(self) -> bool:
        return bool(self.to_workers or self.to_clients or self.kill or self.spawn)


def request_keys() -> Iterator[bytes]:
    """Keys unique to this broker's life and to every earlier one on the same catalog (a
    random prefix), in a few bytes per request. A worker remembers a write whose client gave
    no id under its key, so a write re-sent after its worker died is not applied twice."""
    prefix = os.urandom(8)
    return (prefix + n.to_bytes(8, "big") for n in itertools.count())


class BrokerState:
    """The broker's state and decisions. Call the event methods, then `take()` the actions.

    `worker_timeout`: seconds a worker with requests may go without a reply or heartbeat
    before it is killed as stuck. `lang` as in `Policy`, for the replies the broker writes
    itself (INTERNAL, BAD_REQUEST), which it reports to `count(action, code)` (the stats)."""

    def __init__(self, workers: int, *, worker_timeout: float, lang: str | None = None,
                 keys: Iterator[bytes] | None = None,
                 count: Callable[[str, str], None] | None = None) -> None:
        self.rows = workers
        self.worker_timeout = worker_timeout
        self.lang = lang
        self.workers: dict[bytes, Worker] = {}
        self.pending: deque[tuple[list[bytes], int, bytes]] = deque()  # (msg, attempts, key)
        self.credits = 0  # the sum of every serving worker's credits
        self.violations = 0  # worker messages out of turn or of the wrong shape, ignored
        self.unanswerable = 0  # client messages without a REQ envelope, dropped
        self.peers = PeerQueues()  # the loop tells it of replies refused, clients gone
        self.stopping_since: float | None = None
        self._keys = keys if keys is not None else request_keys()
        self._count = count or _uncounted
        self._actions = Actions()
        self._quick_deaths = 0
        self._respawn_at: dict[int, float] = {}  # row: when to try starting it again
        self._backoff: dict[int, float] = {}  # row: the last delay, doubled at each failure

    # ------------------------------------------------------------ what the loop asks

    def take(self) -> Actions:
        """The actions queued since the last call."""
        actions, self._actions = self._actions, Actions()
        return actions

    @property
    def room(self) -> int:
        """How many client messages the loop may read now: as many as the workers have credits
        for, beyond those already waiting (the rest stay in ZeroMQ's queues, which pushes back
        on the clients)."""
        if self.stopping_since is not None:
            return 0
        if not self.workers and self._respawn_at:
            return NO_WORKER_ROOM
        return self.credits - len(self.pending)

    @property
    def serving(self) -> int:
        return sum(1 for w in self.workers.values() if w.phase is Phase.SERVING)

    @property
    def all_serving(self) -> bool:
        return bool(self.workers) and len(self.workers) == self.rows and all(
            w.phase is Phase.SERVING for w in self.workers.values())

    @property
    def spawn_due(self) -> bool:
        """Whether a worker that could not be started is to be tried again."""
        return bool(self._respawn_at)

    @property
    def has_blocked_replies(self) -> bool:
        return self.peers.any_blocked

    def done(self, now: float) -> bool:
        """Whether a stopping broker may return: nothing in flight, or the grace is over."""
        if self.stopping_since is None:
            return False
        busy = any(w.inflight for w in self.workers.values())
        return not busy or now - self.stopping_since > STOP_GRACE_SECONDS

    def internal(self, msg: list[bytes], reason: str) -> bytes:
        """The INTERNAL reply frame to client message `msg` (its request's id echoed, in its
        language), counted in the stats."""
        self._count(_action_of(msg), "INTERNAL")
        return internal_reply_frame(msg[-1:], self.lang, reason)

    def refusal(self, frames: int) -> bytes:
        """The BAD_REQUEST reply frame to a request of `frames` frames, counted."""
        self._count("invalid", "BAD_REQUEST")
        return refusal_frame(self.lang, "frames", count=frames)

    # ------------------------------------------------------------ events

    def start(self) -> None:
        for row in range(self.rows):
            self._actions.spawn.append((row, False))

    def stop(self, now: float) -> None:
        if self.stopping_since is None:
            self.stopping_since = now

    def worker_started(self, row: int, identity: bytes, now: float) -> None:
        self._respawn_at.pop(row, None)
        self._backoff.pop(row, None)
        self.workers[identity] = Worker(row, identity, progress_at=now)

    def spawn_failed(self, row: int, now: float) -> float:
        """The system refused to start worker `row`: try again later, waiting twice as long
        each time up to a minute (never give up serving). Returns the delay."""
        delay = min(60.0, 2 * self._backoff.get(row, 0.5))
        self._backoff[row] = delay
        self._respawn_at[row] = now + delay
        return delay

    def from_worker(self, msg: list[bytes], now: float) -> None:
        """A message on the workers' socket: ``[worker, ...]``."""
        worker = self.workers.get(msg[0])
        if worker is None:
            return  # a worker that died after sending: its requests were re-sent
        if len(msg) == 4 and msg[1]:
            if not self._move(worker, Event.REPLY):
                return
            request = worker.inflight.pop(msg[2], None)
            if request is None:
                self.violations += 1
                log.warning("Worker %d answered a request it does not hold; ignored",
                            worker.row + 1)
                return
            worker.credits += 1
            if worker.phase is Phase.SERVING:
                self.credits += 1
            worker.progress_at = now
            self._reply(request[0], msg[3])
        elif len(msg) >= 3 and msg[1] == CONTROL and msg[2] == WAITING:
            if self._move(worker, Event.WAITING):
                worker.progress_at = now
        elif len(msg) >= 3 and msg[1] == CONTROL and msg[2] == READY:
            if self._move(worker, Event.READY):
                worker.credits = _credits(msg[3:])
                self.credits += worker.credits
                worker.progress_at = now
                self._quick_deaths = 0
        else:
            self.violations += 1
            log.warning("Worker %d sent a message of unknown shape (%d frames); ignored",
                        worker.row + 1, len(msg))

    def from_client(self, msg: list[bytes], extra_frames: int = 0) -> None:
        """A message on the clients' socket, ``[peer, b"", request]`` (or with routing frames
        before the empty one). `extra_frames`: how many frames beyond KEPT_FRAMES the loop
        read and dropped (a request is one frame; the loop never keeps more of a message)."""
        at = request_index(msg)
        if at is None:
            self.unanswerable += 1  # not a REQ envelope: there is no way to answer it
            return
        if len(msg) > at + 1 or extra_frames:
            self._reply(msg[:at + 1], self.refusal(len(msg) - at + extra_frames),
                        accepted=False)
            return
        if self.peers.admit(msg):
            self.pending.append((msg, 0, next(self._keys)))

    def worker_died(self, identity: bytes, now: float) -> None:
        """Worker `identity`'s process has ended: its requests go back to the front of the
        queue (or are answered INTERNAL after MAX_ATTEMPTS), and a replacement starts."""
        worker = self.workers.pop(identity, None)
        if worker is None:
            return
        was_ready = worker.phase is not Phase.STARTING
        self._move(worker, Event.DIED)
        if worker.phase is Phase.SERVING:
            self.credits -= worker.credits
        for key, (msg, attempts) in reversed(worker.inflight.items()):  # back, in order
            if attempts < MAX_ATTEMPTS:
                self.pending.appendleft((msg, attempts, key))
            else:  # it killed two workers: answer instead of trying a third
                self._reply(msg, self.internal(msg, DIED_REASON))
        if self.stopping_since is not None:
            return
        if not was_ready:
            self._quick_deaths += 1
            if self._quick_deaths > MAX_QUICK_DEATHS:
                raise WorkersKeepDying(
                    "workers keep dying before they are ready; see the log above")
        self._actions.spawn.append((worker.row, True))

    def undeliverable(self, identity: bytes) -> None:
        """The workers' socket refused a message for `identity` (it is gone; its death will be
        seen): its last request goes back to the front, and it gets nothing more."""
        worker = self.workers.get(identity)
        if worker is None or not worker.inflight:
            return
        key, (msg, attempts) = worker.inflight.popitem()
        self.pending.appendleft((msg, attempts - 1, key))
        if worker.phase is Phase.SERVING:
            self.credits -= worker.credits
        worker.credits = 0

    def worker_stuck(self, identity: bytes) -> None:
        """Worker `identity` has answered nothing for the worker timeout while requests wait
        on it (the compiled data path decides this; `tick` does for the Python one): it gets
        nothing more, and is killed. Its requests go to others when its death is seen."""
        worker = self.workers.get(identity)
        if worker is not None and self._move(worker, Event.STUCK):
            self._actions.kill.append(worker.identity)

    def tick(self, now: float) -> None:
        """The clock: take held requests in, retry blocked replies, start due workers, kill
        stuck ones, and give waiting requests to workers."""
        for msg in self.peers.release():  # before the retry: a client still blocked waits
            self.pending.append((msg, 0, next(self._keys)))
        self._actions.to_clients.extend(self.peers.retry())
        for row, at in list(self._respawn_at.items()):
            if now >= at:
                del self._respawn_at[row]
                self._actions.spawn.append((row, False))
        if not self.workers and self._respawn_at and self.pending:
            while self.pending:  # nobody to serve them: answer rather than leave them hanging
                msg, _, _ = self.pending.popleft()
                self._reply(msg, self.internal(msg, UNSTAFFED_REASON))
        self._kill_stuck(now)
        self._dispatch(now)

    # ------------------------------------------------------------ decisions

    def _move(self, worker: Worker, event: Event) -> bool:
        """Apply `event` to `worker` by the table; False (and counted) when it is illegal."""
        try:
            after = TRANSITIONS[worker.phase, event]
        except KeyError:
            self.violations += 1
            log.warning("Worker %d sent %s while %s; ignored", worker.row + 1, event,
                        worker.phase)
            return False
        if after is not GONE:
            if worker.phase is Phase.SERVING and after is Phase.KILLED:
                self.credits -= worker.credits  # a killed worker is given nothing more
            worker.phase = after
        return True

    def _reply(self, msg: list[bytes], frame: bytes, *, accepted: bool = True) -> None:
        self._actions.to_clients.append(reply_to(msg, frame))
        if accepted:
            self.peers.answered(msg[0])

    def _dispatch(self, now: float) -> None:
        """Each waiting request to the serving worker with the most room."""
        if self.stopping_since is not None:
            return
        pending, to_workers = self.pending, self._actions.to_workers
        while pending and self.credits > 0:
            worker = max(self.workers.values(), key=_room_of)
            msg, attempts, key = pending.popleft()
            if not worker.inflight:
                worker.progress_at = now
            worker.inflight[key] = (msg, attempts + 1)
            worker.credits -= 1
            self.credits -= 1
            to_workers.append([worker.identity, msg[0], key, msg[-1]])

    def _kill_stuck(self, now: float) -> None:
        """A worker that has answered nothing for longer than the worker timeout while
        requests wait on it (stopped, deadlocked, or looping) is killed: the zguide's Paranoid
        Pirate idea, from the broker's side. Its requests go to others when its death is seen."""
        for worker in self.workers.values():
            if worker.inflight and worker.phase is Phase.SERVING and \
                    now - worker.progress_at > self.worker_timeout:
                log.warning("Worker %d has answered nothing for %.1f s; killing it",
                            worker.row + 1, now - worker.progress_at)
                self.worker_stuck(worker.identity)


def _uncounted(action: str, code: str) -> None:
    pass


def _action_of(msg: list[bytes]) -> str:
    try:
        return str(parse_request(msg[-1:]).action)
    except ProtocolError:
        return "invalid"


def _room_of(worker: Worker) -> int:
    return worker.credits if worker.phase is Phase.SERVING else -1


def _credits(args: list[bytes]) -> int:
    try:
        return max(1, int(args[0])) if args else 1
    except ValueError:
        return 1
