"""The load-balancing broker (``--workers N``) and its worker processes: the I/O around the
decisions of `libsrv.broker_core.BrokerState`.

A ROUTER faces the clients and a ROUTER faces the workers, as in the zguide's load-balancing
broker, with credit-based flow control: each worker (a DEALER) grants the broker `credits`
requests at start and one more with every reply, so a request goes only to a worker with room
for it, and a worker under load finds several requests waiting at each wake-up and answers them
back to back. The broker reads client messages while workers have room and leaves the rest in
ZeroMQ's queues, which pushes back on the clients.

The broker owns its workers: it watches their process sentinels in the same poll as the
sockets, re-sends a dead worker's unanswered requests (each at most twice in all, then it
answers `INTERNAL`), kills a worker that has made no progress for `worker_timeout`, and starts
replacements. The message shapes between broker and worker are in `libsrv.broker_core`.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection  # up front: imported lazily (in join) it needs a descriptor
import os
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Protocol

import zmq

from libsrv.broker_core import (
    WAITING_MESSAGE,
    BrokerState,
    ready_message,
)
from libsrv.config import DEFAULT_WORKER_TIMEOUT, ServerConfig
from libsrv.scratch import owned_temp_dir, sweep_orphans
from libsrv.security import CurveServer
from libsrv.server import (
    BLOCKED_RETRY_MS,
    IDLE_SECONDS,
    POLL_MS,
    StopFlag,
    client_reader,
    flush_and_close,
    housekeeping,
    listening_options,
    log_request,
    open_service,
    request_log,
    send_replies,
)
from libsrv.service import Handled
from libsrv.stats import StatsBoard
from libsrv.storage import LockTimeout
from libsrv.wire import NOBLOCK, receiver, sender

log = logging.getLogger("libsrv.server")

SOCKET_DIR_PREFIX = "libsrv-sockets-"
WAITING_BEAT_SECONDS = 1.0  # a worker's heartbeat while writes wait for a lock held elsewhere
STOP_WORKERS_SECONDS = 15.0
# A write waits this long for the catalog lock before the worker sets it aside to answer reads
# (the kit's own writers hold the lock for microseconds, the json engine's for milliseconds);
# a set-aside write is tried again at every turn, waiting this long each time.
FIRST_WAIT_SECONDS = 0.2
RETRY_WAIT_SECONDS = 0.02
WAITING_POLL_MS = 5


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
        sock.send_multipart(ready_message())
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
    stop.watch(poller)
    recv, send, again = receiver(sock, NOBLOCK), sender(sock), zmq.Again
    waiting: deque[tuple[bytes, bytes, list[bytes], float]] = deque()  # (client, key, req, t)
    beat_at = 0.0
    while not stop:
        if waiting and time.monotonic() >= beat_at:
            send(WAITING_MESSAGE)
            beat_at = time.monotonic() + WAITING_BEAT_SECONDS
        events = poller.poll(WAITING_POLL_MS if waiting else POLL_MS)
        stop.woke(events)  # the requests that came with it are answered; then the loop ends
        if not events and not waiting:
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
            replies.append([client, key, handled.frame])
            if logging_on:
                log_request(name, pid, handled)
        while True:
            try:
                client, key, request = recv()
            except again:
                break
            handled = handle([request], key, wait=FIRST_WAIT_SECONDS)
            if handled is None:
                waiting.append((client, key, [request], time.monotonic() - FIRST_WAIT_SECONDS))
                continue
            replies.append([client, key, handled.frame])
            if logging_on:
                log_request(name, pid, handled)
        # the batch's replies back to back: libzmq's I/O thread, woken by the first, takes the
        # rest without another wake-up
        for reply in replies:
            send(reply)
        last_activity = time.monotonic()


@dataclass
class Broker:
    """The load-balancing broker's loop: the sockets, the worker processes and the clock,
    around a `BrokerState` that makes every decision."""

    config: ServerConfig
    board: StatsBoard
    stop: StopFlag
    # The function each worker process runs; the CLI passes one that sets up logging first.
    worker_entry: Callable[..., None] = worker_main
    _processes: dict[bytes, BaseProcess] = field(default_factory=dict)
    _generation: int = 0
    _changed: bool = True  # the set of worker processes changed since the poller looked

    def run(self, on_ready: Callable[[str], None]) -> None:
        self.state = BrokerState(
            self.config.workers, lang=self.config.lang,
            worker_timeout=self.config.worker_timeout or DEFAULT_WORKER_TIMEOUT,
            count=self.board.count_front)
        ctx = zmq.Context()
        sweep_orphans(SOCKET_DIR_PREFIX)  # left by a server that was killed
        sockdir = owned_temp_dir(SOCKET_DIR_PREFIX)
        self._backend_endpoint = f"ipc://{sockdir}/workers"
        frontend = ctx.socket(zmq.ROUTER)
        backend = ctx.socket(zmq.ROUTER)
        listening_options(frontend)
        frontend.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a full queue says so; nothing dropped
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
            self._to_worker, self._to_client = sender(backend), sender(frontend, NOBLOCK)
            self._from_worker, self._from_client = receiver(backend, NOBLOCK), \
                client_reader(frontend)
            self._open_data_path(ctx, frontend, backend)
            self.state.start()
            self._carry_out(frontend, backend)
            self._loop(frontend, backend, endpoint, on_ready)
        finally:
            self._close_data_path()
            self._stop_workers()
            frontend.close()
            backend.close()
            if curve is not None:
                curve.stop()
            ctx.term()
            shutil.rmtree(sockdir, ignore_errors=True)

    def _spawn(self, row: int, replacement: bool) -> None:
        """Start worker `row`; if the system refuses (no file descriptors, no memory), the
        state says when to try again."""
        self._generation += 1
        identity = f"w{row + 1}-{self._generation}".encode()
        process = self._spawn_ctx.Process(
            target=self.worker_entry, name=f"libsrv-worker-{row + 1}",
            args=(self.config, self.board, row, identity, self._backend_endpoint))
        self._starting(row, identity)
        try:
            process.start()
        except OSError as error:
            self._ended(identity)
            delay = self.state.spawn_failed(row, time.monotonic())
            log.error("could not start worker %d (%s); trying again in %.0f s", row + 1,
                      error, delay)
            return
        if replacement:
            self.board.restarts[row] += 1
        self._processes[identity] = process
        self._changed = True
        self.state.worker_started(row, identity, time.monotonic())

    def _open_data_path(self, ctx: zmq.Context, frontend: zmq.Socket,
                        backend: zmq.Socket) -> None:
        """Before the first worker starts (a hook for the compiled data path)."""

    def _close_data_path(self) -> None:
        """Before the sockets close, however the loop ended (a hook for the compiled data
        path)."""

    def _starting(self, row: int, identity: bytes) -> None:
        """Worker `row` is about to start as `identity` (a hook for the compiled data path)."""

    def _ended(self, identity: bytes) -> None:
        """Worker `identity` ended, or never started (a hook for the compiled data path)."""

    def _carry_out(self, frontend: zmq.Socket, backend: zmq.Socket) -> None:
        """Do what the state decided: requests to workers, replies to clients (back to back:
        libzmq's I/O thread, woken by the first, takes the rest without another wake-up),
        kills, starts."""
        state, to_worker, to_client = self.state, self._to_worker, self._to_client
        while True:
            actions = state.take()
            if not actions:
                return
            for msg in actions.to_workers:
                try:
                    to_worker(msg)
                except zmq.ZMQError:  # EHOSTUNREACH: gone; its sentinel will say so
                    state.undeliverable(msg[0])
            send_replies(to_client, actions.to_clients, state.peers)
            for identity in actions.kill:
                process = self._processes.get(identity)
                if process is not None:
                    process.kill()
            for row, replacement in actions.spawn:
                self._spawn(row, replacement)
            if state.pending and state.credits > 0:
                state.tick(time.monotonic())  # a re-sent request, after a failed send

    def _loop(self, frontend: zmq.Socket, backend: zmq.Socket, endpoint: str,
              on_ready: Callable[[str], None]) -> None:
        state = self.state
        announced = False
        poller = zmq.Poller()
        poller.register(backend, zmq.POLLIN)
        self.stop.watch(poller)
        watching_frontend = False
        sentinels: dict[int, bytes] = {}
        while True:
            now = time.monotonic()
            if self.stop:
                state.stop(now)
            if state.done(now):
                return
            want_frontend = state.room > 0
            if want_frontend != watching_frontend:
                if want_frontend:
                    poller.register(frontend, zmq.POLLIN)
                else:
                    poller.unregister(frontend)
                watching_frontend = want_frontend
            sentinels = self._watch_sentinels(poller, sentinels)
            events = dict(poller.poll(BLOCKED_RETRY_MS if state.has_blocked_replies
                                      else POLL_MS))
            now = time.monotonic()
            woke = self.stop.woke(events)
            if backend in events:  # replies first: a worker that died may have answered
                self._drain_backend(backend, now)
            if len(events) > (backend in events) + (frontend in events) + woke:
                for fd, identity in sentinels.items():
                    if fd in events:
                        self._on_death(identity, now)
            if frontend in events:
                self._drain_frontend(frontend)
            state.tick(now)
            self._carry_out(frontend, backend)
            announced = self._say_serving(announced, endpoint, on_ready)

    def _watch_sentinels(self, poller: zmq.Poller, sentinels: dict[int, bytes]
                         ) -> dict[int, bytes]:
        """The worker processes' sentinels in `poller`, brought up to date when the set of
        processes changed (a new sentinel may reuse a dead one's descriptor number)."""
        if not self._changed:
            return sentinels
        self._changed = False
        current = {p.sentinel: ident for ident, p in self._processes.items()}
        for fd in sentinels.keys() - current.keys():
            poller.unregister(fd)
        for fd in current.keys() - sentinels.keys():
            poller.register(fd, zmq.POLLIN)
        return current

    def _say_serving(self, announced: bool, endpoint: str,
                     on_ready: Callable[[str], None]) -> bool:
        """How many workers serve, where `ping` and `stats` read it; the ready line once all
        do. Returns whether it was said."""
        state = self.state
        if state.serving != self.board.serving.value:
            self.board.serving.value = state.serving
        if not announced and state.all_serving:
            on_ready(endpoint)
            return True
        return announced

    def _drain_backend(self, backend: zmq.Socket, now: float) -> None:
        """Every worker message already queued."""
        from_worker, recv = self.state.from_worker, self._from_worker
        while True:
            try:
                msg = recv()
            except zmq.Again:
                return
            from_worker(msg, now)

    def _drain_frontend(self, frontend: zmq.Socket) -> None:
        """Take as many client messages as the state has room for, each frame by frame: of a
        message longer than a request's envelope, the rest is read and dropped, never kept."""
        state, read = self.state, self._from_client
        for _ in range(state.room):
            try:
                msg, extra = read()
            except zmq.Again:
                return
            state.from_client(msg, extra)

    def _on_death(self, identity: bytes, now: float) -> None:
        process = self._processes.pop(identity)
        self._changed = True
        process.join(timeout=1)
        self._ended(identity)
        worker = self.state.workers.get(identity)
        if worker is not None and self.state.stopping_since is None:
            log.warning("Worker %d (PID %s) exited with code %s; starting a replacement",
                        worker.row + 1, process.pid, process.exitcode)
        self.state.worker_died(identity, now)

    def _stop_workers(self) -> None:
        processes = list(self._processes.values())
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
        self._processes.clear()
