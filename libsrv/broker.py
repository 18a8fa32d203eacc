"""The load-balancing broker (``--workers N``) and its worker processes.

A ROUTER faces the clients and a ROUTER faces the workers, as in the zguide's load-balancing
broker, with credit-based flow control: each worker (a DEALER) grants the broker `credits`
requests at start and one more with every reply, so a request goes only to a worker with room
for it, and a worker under load finds several requests waiting at each wake-up and answers them
back to back. The broker reads every ready message at each poll, gives each request to the
worker with the most room, and leaves requests in the client socket's queue while no worker
has any.

The broker owns its workers: it watches their process sentinels in the same poll as the
sockets, re-sends a dead worker's unanswered requests (each at most twice in all, then it
answers `INTERNAL`), kills a worker that has made no progress for `worker_timeout`, and starts
replacements.

Between broker and worker a request travels as ``[client, request]`` and a reply as
``[client, reply]`` (the clients' empty delimiter frame stays at the broker: one frame less to
move each way); the broker adds and strips the worker's identity.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import multiprocessing.connection  # up front: imported lazily (in join) it needs a descriptor
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Protocol

import zmq

from libsrv.config import DEFAULT_WORKER_TIMEOUT, ServerConfig
from libsrv.scratch import owned_temp_dir, sweep_orphans
from libsrv.security import CurveServer
from libsrv.server import (
    IDLE_SECONDS,
    POLL_MS,
    StopFlag,
    flush_and_close,
    housekeeping,
    listening_options,
    log_request,
    open_service,
    request_log,
)
from libsrv.service import Handled, internal_reply_frame
from libsrv.stats import StatsBoard
from libsrv.storage import LockTimeout

log = logging.getLogger("libsrv.server")

SOCKET_DIR_PREFIX = "libsrv-sockets-"
READY = b"READY"
WAITING = b"WAITING"  # a worker's heartbeat while writes wait for a lock held elsewhere
WAITING_BEAT_SECONDS = 1.0
# Requests a worker accepts ahead. More lets a worker answer a burst at one wake-up; fewer
# keeps what a dying or stuck worker holds small. Measured in docs/broker.md.
WORKER_CREDITS = 4
STOP_WORKERS_SECONDS = 15.0
MAX_QUICK_DEATHS = 5  # workers dying before they are ready: give up instead of looping
MAX_ATTEMPTS = 2  # a request that killed this many workers is answered INTERNAL
# A write waits this long for the catalog lock before the worker sets it aside to answer reads
# (the kit's own writers hold the lock for microseconds, the json engine's for milliseconds);
# a set-aside write is tried again at every turn, waiting this long each time.
FIRST_WAIT_SECONDS = 0.2
RETRY_WAIT_SECONDS = 0.02
WAITING_POLL_MS = 5


def _answered(inflight: deque[_Request], client: bytes) -> None:
    """Forget the request `client` was answered for. Usually the oldest, but a worker answers
    a write waiting for the lock after the reads that came behind it."""
    for index, (msg, _, _) in enumerate(inflight):
        if msg[0] == client:
            del inflight[index]
            return


def _request_keys() -> Iterator[bytes]:
    """Keys unique to this broker's life and to every earlier one on the same catalog (a
    random prefix), in a few bytes per request."""
    prefix = os.urandom(8)
    return (prefix + n.to_bytes(8, "big") for n in itertools.count())


def worker_main(config: ServerConfig, board: StatsBoard, row: int, identity: bytes,
                backend: str) -> None:
    """A worker process: load the catalog, grant the broker credits, answer until signalled."""
    stop = StopFlag().install()
    board.pids[row] = os.getpid()
    name = f"Worker {row + 1}"
    while True:  # a replacement started while another program holds the lock waits for it
        try:
            service = open_service(config, board, row + 1)
            break
        except LockTimeout as error:
            if stop:
                return
            log.warning("%s cannot load the catalog yet: %s; waiting on", name, error)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.setsockopt(zmq.IDENTITY, identity)
    try:
        sock.connect(backend)
        sock.send_multipart([READY, str(WORKER_CREDITS).encode()])
        serve_dealer(sock, service.handle, stop, name,
                     idle=lambda: housekeeping(service, name), locked_out=service.locked_out,
                     patience=config.lock_timeout)
    finally:
        sock.close()
        ctx.term()
        flush_and_close(service, name)


class Handler(Protocol):
    """What a worker's loop calls: `Service.handle`, or the echo's stand-in."""

    def __call__(self, frames: list[bytes], key: bytes | None = None, *,
                 wait: float | None = None) -> Handled | None: ...


def serve_dealer(sock: zmq.Socket, handle: Handler, stop: StopFlag, name: str,
                 idle: Callable[[], None] | None = None,
                 locked_out: Callable[[list[bytes], float], Handled] | None = None,
                 patience: float = 15.0) -> None:
    """A worker's loop: at each wake-up, answer every request already queued.

    A write that finds the catalog lock held (by another program: the kit's own writers hold
    it for microseconds) is set aside, and the worker goes on answering reads; it tries the
    set-aside writes again, oldest first, at every turn, and after `patience` seconds answers
    one with `locked_out` instead. Meanwhile it tells the broker every WAITING_BEAT_SECONDS
    that it is waiting, not stuck (a stopped worker sends nothing, and is replaced)."""
    pid = os.getpid()
    last_activity = time.monotonic()
    poller = zmq.Poller()  # one poller for the life of the loop: `sock.poll` builds one a call
    poller.register(sock, zmq.POLLIN)
    recv, send, again = sock.recv_multipart, sock.send_multipart, zmq.Again
    waiting: deque[tuple[bytes, bytes, list[bytes], float]] = deque()  # (client, key, req, t)
    beat_at = 0.0
    while not stop:
        if waiting and time.monotonic() >= beat_at:
            send([WAITING])
            beat_at = time.monotonic() + WAITING_BEAT_SECONDS
        if not poller.poll(WAITING_POLL_MS if waiting else POLL_MS) and not waiting:
            if idle is not None and time.monotonic() - last_activity >= IDLE_SECONDS:
                idle()
                last_activity = time.monotonic()
            continue
        logging_on = request_log.isEnabledFor(logging.INFO)
        replies = []
        while waiting:
            client, key, request, since = waiting[0]
            overdue = time.monotonic() - since >= patience and locked_out is not None
            handled = locked_out(request, patience) if overdue else \
                handle(request, key, wait=RETRY_WAIT_SECONDS)
            if handled is None:
                break  # still held; the others behind it wait their turn
            waiting.popleft()
            replies.append([client, handled.frame])
            if logging_on:
                log_request(name, pid, handled)
        while True:
            try:
                client, key, *request = recv(zmq.NOBLOCK)
            except again:
                break
            handled = handle(request, key, wait=FIRST_WAIT_SECONDS)
            if handled is None:
                waiting.append((client, key, request, time.monotonic() - FIRST_WAIT_SECONDS))
                continue
            replies.append([client, handled.frame])
            if logging_on:
                log_request(name, pid, handled)
        # the batch's replies back to back: libzmq's I/O thread, woken by the first, takes the
        # rest without another wake-up
        for reply in replies:
            send(reply)
        last_activity = time.monotonic()


# A request the broker holds: the client's message, how many workers it was sent to, and the
# key the broker gave it. The key makes a re-sent write idempotent when the client gave no id:
# a worker that applied it and died before answering has left the key in the journal.
_Request = tuple[list[bytes], int, bytes]


@dataclass
class _Worker:
    row: int
    identity: bytes
    process: BaseProcess
    ready: bool = False
    credits: int = 0
    inflight: deque[_Request] = field(default_factory=deque)
    progress_at: float = 0.0  # last reply, or the dispatch that found it idle
    killed: bool = False


@dataclass
class Broker:
    """The load-balancing broker and the owner of the worker processes."""

    config: ServerConfig
    board: StatsBoard
    stop: StopFlag
    # The function each worker process runs; the CLI passes one that sets up logging first.
    worker_entry: Callable[..., None] = worker_main
    _workers: dict[bytes, _Worker] = field(default_factory=dict)
    _pending: deque[_Request] = field(default_factory=deque)
    _keys: Iterator[bytes] = field(default_factory=_request_keys)
    _generation: int = 0
    _quick_deaths: int = 0
    _credits: int = 0  # the sum of every worker's credits
    _changed: bool = True  # the set of workers changed since the poller last looked
    _respawns: dict[int, tuple[float, float]] = field(default_factory=dict)  # row: (at, delay)

    def run(self, on_ready: Callable[[str], None]) -> None:
        self._worker_timeout = self.config.worker_timeout or DEFAULT_WORKER_TIMEOUT
        ctx = zmq.Context()
        sweep_orphans(SOCKET_DIR_PREFIX)  # left by a server that was killed
        sockdir = owned_temp_dir(SOCKET_DIR_PREFIX)
        self._backend_endpoint = f"ipc://{sockdir}/workers"
        frontend = ctx.socket(zmq.ROUTER)
        backend = ctx.socket(zmq.ROUTER)
        listening_options(frontend)
        backend.linger = 0
        backend.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._spawn_ctx = multiprocessing.get_context("spawn")
        curve = CurveServer(ctx, self.config.curve) if self.config.curve else None
        try:
            if curve is not None:
                curve.apply(frontend)
            backend.bind(self._backend_endpoint)
            frontend.bind(self.config.bind_endpoint)
            endpoint = frontend.getsockopt_string(zmq.LAST_ENDPOINT)
            for row in range(self.config.workers):
                self._spawn(row)
            self._loop(frontend, backend, endpoint, on_ready)
        finally:
            self._stop_workers()
            frontend.close()
            backend.close()
            if curve is not None:
                curve.stop()
            ctx.term()
            shutil.rmtree(sockdir, ignore_errors=True)

    def _spawn(self, row: int) -> None:
        """Start worker `row`; if the system refuses (no file descriptors, no memory), try
        again later, waiting twice as long each time up to a minute: never give up serving."""
        self._generation += 1
        identity = f"w{row + 1}-{self._generation}".encode()
        process = self._spawn_ctx.Process(
            target=self.worker_entry, name=f"libsrv-worker-{row + 1}",
            args=(self.config, self.board, row, identity, self._backend_endpoint))
        try:
            process.start()
        except OSError as error:
            delay = min(60.0, 2 * self._respawns.get(row, (0.0, 0.5))[1])
            log.error("could not start worker %d (%s); trying again in %.0f s", row + 1,
                      error, delay)
            self._respawns[row] = (time.monotonic() + delay, delay)
            return
        self._respawns.pop(row, None)
        self._workers[identity] = _Worker(row, identity, process)
        self._changed = True

    def _respawn_due(self, frontend: zmq.Socket) -> None:
        """Start the workers whose earlier start failed, when their time comes; while there
        is no worker at all, answer waiting requests INTERNAL rather than leave them hanging."""
        now = time.monotonic()
        for row, (at, _) in list(self._respawns.items()):
            if now >= at:
                self._spawn(row)
        if not self._workers:
            while self._pending:
                msg, _, _ = self._pending.popleft()
                frontend.send_multipart([*msg[:2], internal_reply_frame(
                    msg[2:], self.config.lang, "no worker process could be started; try "
                    "again shortly")])

    def _loop(self, frontend: zmq.Socket, backend: zmq.Socket, endpoint: str,
              on_ready: Callable[[str], None]) -> None:
        announced = False
        stopping_since: float | None = None
        poller = zmq.Poller()
        poller.register(backend, zmq.POLLIN)
        watching_frontend = False
        sentinels: dict[int, _Worker] = {}
        while True:
            if self.stop and stopping_since is None:
                stopping_since = time.monotonic()
            if stopping_since is not None:
                busy = any(w.inflight for w in self._workers.values())
                if not busy or time.monotonic() - stopping_since > 2.0:
                    return
            stranded = not self._workers and bool(self._respawns)  # answered INTERNAL
            want_frontend = stopping_since is None and (
                self._credits > len(self._pending) or stranded)
            if want_frontend != watching_frontend:
                if want_frontend:
                    poller.register(frontend, zmq.POLLIN)
                else:
                    poller.unregister(frontend)
                watching_frontend = want_frontend
            if self._changed:
                self._changed = False
                current = {w.process.sentinel: w for w in self._workers.values()}
                for fd in sentinels.keys() - current.keys():
                    poller.unregister(fd)
                for fd in current.keys() - sentinels.keys():
                    poller.register(fd, zmq.POLLIN)
                sentinels = current
            events = dict(poller.poll(POLL_MS))
            if backend in events:  # replies first: a worker that died may have answered
                self._drain_backend(backend, frontend)
            if len(events) > (backend in events) + (frontend in events):
                for fd, worker in sentinels.items():
                    if fd in events:
                        self._on_death(worker, frontend)
            if frontend in events:
                self._drain_frontend(frontend)
            if self._respawns:
                self._respawn_due(frontend)
            self._dispatch(backend)
            self._kill_stuck()
            if not announced and self._workers and all(
                    w.ready for w in self._workers.values()):
                announced = True
                on_ready(endpoint)

    def _drain_backend(self, backend: zmq.Socket, frontend: zmq.Socket) -> None:
        """Every reply already queued: forward it, and give the worker its credit back."""
        now = time.monotonic()
        replies = []
        while True:
            try:
                msg = backend.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            worker = self._workers.get(msg[0])
            if worker is None:
                continue  # a worker that died after sending: its requests were re-sent
            if msg[1] == WAITING:
                worker.progress_at = now
                continue
            if msg[1] == READY:
                worker.ready = True
                worker.credits = _credits(msg)
                self._credits += worker.credits
                self._quick_deaths = 0
                continue
            _answered(worker.inflight, msg[1])
            worker.credits += 1
            self._credits += 1
            worker.progress_at = now
            replies.append([msg[1], b"", *msg[2:]])
        for reply in replies:  # back to back, as the workers send theirs
            frontend.send_multipart(reply)

    def _drain_frontend(self, frontend: zmq.Socket) -> None:
        """Take as many requests as the workers have room for."""
        room = self._credits - len(self._pending)
        if not self._workers and self._respawns:
            room = 100  # nobody to serve them: take them to answer INTERNAL
        while room > 0:
            try:
                msg = frontend.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(msg) < 3 or msg[1] != b"":
                continue  # not a REQ envelope: there is no way to answer it
            self._pending.append((msg, 0, next(self._keys)))
            room -= 1

    def _dispatch(self, backend: zmq.Socket) -> None:
        """Each pending request to the worker with the most room."""
        pending, workers = self._pending, self._workers.values()
        while pending and self._credits > 0 and not self.stop:
            worker = max(workers, key=_room_of)
            msg, attempts, key = pending.popleft()
            try:
                backend.send_multipart([worker.identity, msg[0], key, *msg[2:]])
            except zmq.ZMQError:  # EHOSTUNREACH: the worker is gone; its sentinel will say so
                pending.appendleft((msg, attempts, key))
                self._credits -= worker.credits
                worker.credits = 0
                continue
            if not worker.inflight:
                worker.progress_at = time.monotonic()
            worker.inflight.append((msg, attempts + 1, key))
            worker.credits -= 1
            self._credits -= 1

    def _kill_stuck(self) -> None:
        """Kill a worker that has answered nothing for longer than the worker timeout while
        requests wait on it (stopped, deadlocked, or looping): the zguide's Paranoid Pirate
        idea, from the broker's side. Its requests go to other workers; a replacement starts."""
        now = time.monotonic()
        for worker in self._workers.values():
            if worker.inflight and not worker.killed and \
                    now - worker.progress_at > self._worker_timeout:
                log.warning("Worker %d (PID %s) has answered nothing for %.1f s; killing it",
                            worker.row + 1, worker.process.pid, now - worker.progress_at)
                worker.killed = True
                worker.process.kill()

    def _on_death(self, worker: _Worker, frontend: zmq.Socket) -> None:
        worker.process.join(timeout=1)
        del self._workers[worker.identity]
        self._credits -= worker.credits
        self._changed = True
        for msg, attempts, key in reversed(worker.inflight):  # back to the front, in order
            if attempts < MAX_ATTEMPTS:
                self._pending.appendleft((msg, attempts, key))
            else:  # it killed two workers: answer instead of trying a third
                frontend.send_multipart([*msg[:2], internal_reply_frame(
                    msg[2:], self.config.lang, "the worker handling it died")])
        if self.stop:
            return
        log.warning("Worker %d (PID %s) exited with code %s; starting a replacement",
                    worker.row + 1, worker.process.pid, worker.process.exitcode)
        if not worker.ready:
            self._quick_deaths += 1
            if self._quick_deaths > MAX_QUICK_DEATHS:
                raise RuntimeError("workers keep dying before they are ready; see the log above")
        self.board.restarts[worker.row] += 1
        self._spawn(worker.row)

    def _stop_workers(self) -> None:
        processes = [w.process for w in self._workers.values()]
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + STOP_WORKERS_SECONDS
        for process in processes:
            process.join(timeout=max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker PID %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join(timeout=5)
        self._workers.clear()


def _room_of(worker: _Worker) -> int:
    return worker.credits


def _credits(msg: list[bytes]) -> int:
    try:
        return max(1, int(msg[2])) if len(msg) > 2 else 1
    except ValueError:
        return 1


def run_broker(config: ServerConfig, stop: StopFlag, on_ready: Callable[[str], None],
               worker_entry: Callable[..., None] = worker_main) -> bool:
    """Serve with a broker and `config.workers` worker processes until `stop` is set; whether
    the catalog file is current on return (every worker's last flush worked)."""
    board = StatsBoard(config.workers, config.storage)
    Broker(config, board, stop, worker_entry=worker_entry).run(on_ready)
    return not board.flush_failed.value
