"""The server's sockets and processes: a single REP socket (``--workers 0``), or a
load-balancing broker in front of N worker processes (``--workers N``).

The broker follows the zguide's load-balancing pattern: a ROUTER faces the clients, a ROUTER
faces the workers, and a request goes only to a worker that said it is idle. The broker owns
its workers: it watches their process sentinels in the same poll as the sockets, never routes
to a dead worker, re-sends a dead worker's in-flight request once, and starts a replacement.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from types import FrameType

import zmq

from libsrv.config import ServerConfig
from libsrv.library import Policy
from libsrv.protocol import MAX_FRAME_BYTES
from libsrv.security import CurveServer
from libsrv.service import Service, internal_reply_frame
from libsrv.stats import StatsBoard
from libsrv.storage import Storage, StorageError, open_storage

log = logging.getLogger("libsrv.server")
request_log = logging.getLogger("libsrv.requests")

READY = b"READY"
POLL_MS = 100
IDLE_SECONDS = 1.0  # quiet time after which a process does its storage housekeeping
# Frames up to this size are read and refused with BAD_REQUEST; a larger one makes ZeroMQ drop
# the sender's connection before the frame is in memory.
HARD_FRAME_LIMIT = 16 * MAX_FRAME_BYTES
STOP_WORKERS_SECONDS = 15.0
MAX_QUICK_DEATHS = 5  # workers dying before they are ready: give up instead of looping


class StopFlag:
    """Set by SIGINT or SIGTERM (or by `set()`), polled by the server loops."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def install(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._on_signal)
            signal.signal(signal.SIGTERM, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._event.set()

    def set(self) -> None:
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()


def open_service(config: ServerConfig, board: StatsBoard, worker: int,
                 storage: Storage | None = None) -> Service:
    if storage is None:
        storage = open_storage(config.storage, config.db, lock_timeout=config.lock_timeout,
                               locking=config.locking, fsync=config.fsync)
    return Service(storage, Policy(loan_days=config.loan_days, lang=config.lang), board, worker)


def _serve_socket(sock: zmq.Socket, service: Service, stop: StopFlag, *, envelope: bool,
                  name: str) -> None:
    """Answer requests on a REP socket, or on a worker's REQ socket (`envelope`: the request
    arrives as [client, "", request...] and the reply must carry the same envelope back)."""
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    last_activity = time.monotonic()
    pid = os.getpid()
    while not stop:
        if not poller.poll(POLL_MS):
            if time.monotonic() - last_activity >= IDLE_SECONDS:
                try:
                    service.storage.idle()
                except StorageError as error:
                    log.warning("%s: housekeeping failed: %s", name, error)
                except Exception:
                    log.exception("%s: housekeeping failed", name)
                last_activity = time.monotonic()
            continue
        frames = sock.recv_multipart()
        if envelope:
            head, frames = frames[:2], frames[2:]
            handled = service.handle(frames)
            sock.send_multipart([*head, handled.frame])
        else:
            handled = service.handle(frames)
            sock.send(handled.frame)
        if request_log.isEnabledFor(logging.INFO):
            request_log.info("[%s] (PID %d) %s → %s", name, pid, handled.action, handled.code)
        last_activity = time.monotonic()


def _flush(service: Service, name: str) -> None:
    try:
        service.storage.flush()
    except Exception as error:
        log.error("%s: could not bring the catalog file up to date: %s", name, error)
    service.storage.close()


# ---------------------------------------------------------------- --workers 0


def run_single(config: ServerConfig, storage: Storage, stop: StopFlag,
               on_ready: Callable[[str], None]) -> None:
    """Serve on one REP socket until `stop` is set; the catalog file is current on return."""
    board = StatsBoard(0, config.storage)
    board.pids[0] = os.getpid()
    service = open_service(config, board, 0, storage)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.linger = 0
    sock.setsockopt(zmq.MAXMSGSIZE, HARD_FRAME_LIMIT)
    curve = CurveServer(ctx, config.curve) if config.curve else None
    try:
        if curve is not None:
            curve.apply(sock)
        sock.bind(config.bind_endpoint)
        on_ready(sock.getsockopt_string(zmq.LAST_ENDPOINT))
        _serve_socket(sock, service, stop, envelope=False, name="Server")
    finally:
        sock.close()
        if curve is not None:
            curve.stop()
        ctx.term()
        _flush(service, "server")


# ---------------------------------------------------------------- workers


def worker_main(config: ServerConfig, board: StatsBoard, row: int, identity: bytes,
                backend: str) -> None:
    """A worker process: load the catalog, say READY to the broker, answer until signalled."""
    stop = StopFlag().install()
    board.pids[row] = os.getpid()
    name = f"Worker {row + 1}"
    service = open_service(config, board, row + 1)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    sock.setsockopt(zmq.IDENTITY, identity)
    try:
        sock.connect(backend)
        sock.send(READY)
        _serve_socket(sock, service, stop, envelope=True, name=name)
    finally:
        sock.close()
        ctx.term()
        _flush(service, name)


@dataclass
class _Worker:
    row: int
    identity: bytes
    process: BaseProcess
    ready: bool = False
    inflight: list[bytes] | None = None
    attempts: int = 0
    busy_since: float = 0.0
    killed: bool = False


@dataclass
class Broker:
    """The load-balancing broker and the owner of the worker processes."""

    config: ServerConfig
    board: StatsBoard
    stop: StopFlag
    _workers: dict[bytes, _Worker] = field(default_factory=dict)
    _idle: deque[bytes] = field(default_factory=deque)
    _pending: deque[tuple[list[bytes], int]] = field(default_factory=deque)
    _generation: int = 0
    _quick_deaths: int = 0
    # The function each worker process runs; the CLI passes one that sets up logging first.
    worker_entry: Callable[..., None] = worker_main

    def run(self, on_ready: Callable[[str], None]) -> None:
        ctx = zmq.Context()
        sockdir = tempfile.mkdtemp(prefix="libsrv-")
        self._backend_endpoint = f"ipc://{sockdir}/workers"
        frontend = ctx.socket(zmq.ROUTER)
        backend = ctx.socket(zmq.ROUTER)
        for sock in (frontend, backend):
            sock.linger = 0
        frontend.setsockopt(zmq.MAXMSGSIZE, HARD_FRAME_LIMIT)
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
        self._generation += 1
        identity = f"w{row + 1}-{self._generation}".encode()
        process = self._spawn_ctx.Process(
            target=self.worker_entry, name=f"libsrv-worker-{row + 1}",
            args=(self.config, self.board, row, identity, self._backend_endpoint))
        process.start()
        self._workers[identity] = _Worker(row, identity, process)

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
            want_frontend = bool(self._idle) and not self._pending and stopping_since is None
            if want_frontend != watching_frontend:
                if want_frontend:
                    poller.register(frontend, zmq.POLLIN)
                else:
                    poller.unregister(frontend)
                watching_frontend = want_frontend
            current = {w.process.sentinel: w for w in self._workers.values()}
            if current.keys() != sentinels.keys():
                for fd in sentinels.keys() - current.keys():
                    poller.unregister(fd)
                for fd in current.keys() - sentinels.keys():
                    poller.register(fd, zmq.POLLIN)
                sentinels = current
            events = dict(poller.poll(POLL_MS))
            for fd, worker in sentinels.items():
                if fd in events:
                    self._on_death(worker, frontend)
            if backend in events:
                self._drain(backend, lambda msg: self._on_backend(msg, frontend))
            if frontend in events:
                while len(self._pending) < len(self._idle):
                    try:
                        self._pending.append((frontend.recv_multipart(zmq.NOBLOCK), 0))
                    except zmq.Again:
                        break
            self._dispatch(backend, frontend)
            self._kill_stuck()
            if not announced and all(w.ready for w in self._workers.values()):
                announced = True
                on_ready(endpoint)

    @staticmethod
    def _drain(sock: zmq.Socket, handle: Callable[[list[bytes]], None]) -> None:
        """Take every message already queued, so a busy broker polls once per batch."""
        while True:
            try:
                msg = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            handle(msg)

    def _on_backend(self, msg: list[bytes], frontend: zmq.Socket) -> None:
        worker = self._workers.get(msg[0])
        if worker is None:
            return  # a worker that died after sending: its request was re-sent already
        if len(msg) == 3 and msg[2] == READY:
            worker.ready = True
            self._quick_deaths = 0
        else:
            frontend.send_multipart(msg[2:])
            worker.inflight = None
        if not self.stop:
            self._idle.append(worker.identity)

    def _dispatch(self, backend: zmq.Socket, frontend: zmq.Socket) -> None:
        while self._pending and self._idle:
            msg, attempts = self._pending.popleft()
            if len(msg) < 3 or msg[1] != b"":
                continue  # not a REQ envelope: there is no way to answer it
            identity = self._idle.popleft()
            worker = self._workers[identity]
            try:
                backend.send_multipart([identity, b"", *msg])
            except zmq.ZMQError:  # EHOSTUNREACH: the worker is gone; its sentinel will say so
                self._pending.appendleft((msg, attempts))
                continue
            worker.inflight, worker.attempts = msg, attempts + 1
            worker.busy_since = time.monotonic()

    def _kill_stuck(self) -> None:
        """Kill a worker busy on one request for longer than the worker timeout (stopped,
        deadlocked, or looping): the zguide's Paranoid Pirate idea, from the broker's side.
        Its request is sent to another worker, and a replacement starts."""
        now = time.monotonic()
        for worker in self._workers.values():
            if worker.inflight is not None and not worker.killed and \
                    now - worker.busy_since > self.config.worker_timeout:
                log.warning("Worker %d (PID %s) has been busy for %.1f s; killing it",
                            worker.row + 1, worker.process.pid, now - worker.busy_since)
                worker.killed = True
                worker.process.kill()

    def _on_death(self, worker: _Worker, frontend: zmq.Socket) -> None:
        worker.process.join(timeout=1)
        del self._workers[worker.identity]
        if worker.identity in self._idle:
            self._idle.remove(worker.identity)
        if worker.inflight is not None:
            if worker.attempts < 2:
                self._pending.appendleft((worker.inflight, worker.attempts))
            else:  # it killed two workers: answer instead of trying a third
                frontend.send_multipart([*worker.inflight[:2], internal_reply_frame(
                    worker.inflight[2:], self.config.lang, "the worker handling it died")])
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


def run_broker(config: ServerConfig, stop: StopFlag, on_ready: Callable[[str], None],
               worker_entry: Callable[..., None] = worker_main) -> None:
    """Serve with a broker and `config.workers` worker processes until `stop` is set."""
    board = StatsBoard(config.workers, config.storage)
    Broker(config, board, stop, worker_entry=worker_entry).run(on_ready)
