"""One or N processes serving one TCP port, for the transports other than ZeroMQ.

Each serving process binds the port itself with SO_REUSEPORT, so the kernel spreads client
connections over them, and runs its own `Service` on the shared catalog: the same lock and
journal as the broker's workers, so writes from every process are serialised by the catalog
lock, not by the transport. The parent holds the port (bound, never listening: the kernel hands
connections to listening sockets only), supervises (a process that dies is started again in its
row) and ends them all with SIGTERM when `stop` is set. With ``workers=0`` the one serving
process is the caller itself, as with the single REP server.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from libsrv.config import ServerConfig
from libsrv.server import StopFlag, flush_and_close, open_service
from libsrv.service import Service
from libsrv.stats import StatsBoard

log = logging.getLogger("libsrv.transports")

READY_SECONDS = 60.0  # a process loading a big catalog takes a while
STOP_SECONDS = 10.0  # then SIGKILL
RESTART_PAUSE = 0.5  # between a death and its replacement, so a crash loop does not spin


class ServeOne(Protocol):
    """Serve `service` on `config.port` (bound with SO_REUSEPORT) until `stop` is set; call
    `ready` once clients can connect. `service` is None for an echo (`run_pool`'s
    `with_service`)."""

    def __call__(self, config: ServerConfig, service: Service | None, stop: StopFlag,
                 ready: Callable[[], None]) -> None: ...


def reuseport_socket(host: str, port: int, *, listen: bool = False) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT (port 0: a free one), listening
    when asked. Raises OSError (EADDRINUSE when another program holds the port)."""
    bind_host = "0.0.0.0" if host in ("*", "0.0.0.0") else host
    family, kind, proto, _, address = socket.getaddrinfo(bind_host, port,
                                                         type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if listen:
            sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def _serve(serve_one: ServeOne, config: ServerConfig, board: StatsBoard, worker: int,
           stop: StopFlag, ready: Callable[[], None], with_service: bool) -> None:
    board.pids[max(0, worker - 1)] = os.getpid()
    if not with_service:
        serve_one(config, None, stop, ready)
        return
    service = open_service(config, board, worker)
    try:
        serve_one(config, service, stop, ready)
    finally:
        flush_and_close(service, f"worker {worker}" if worker else "server")


def _child(serve_one: ServeOne, config: ServerConfig, board: StatsBoard, worker: int,
           ready: Any, with_service: bool) -> None:
    _serve(serve_one, config, board, worker, StopFlag().install(), ready.set, with_service)


def run_pool(config: ServerConfig, stop: StopFlag, on_ready: Callable[[str], None],
             serve_one: ServeOne, scheme: str, *, with_service: bool = True) -> bool:
    """Serve until `stop` is set: `serve_one` in this process (``workers=0``) or in
    `config.workers` supervised children. `on_ready` gets ``scheme://host:port`` once every
    process serves. Without `with_service` no catalog is opened (an echo). Returns whether the
    catalog file is current at the end. `serve_one` must be picklable (a module's function,
    or a functools.partial of one) to reach the children."""
    hold = reuseport_socket(config.host, config.port)
    try:
        config = replace(config, port=hold.getsockname()[1])
        endpoint = f"{scheme}://{config.host}:{config.port}"
        board = StatsBoard(config.workers, config.storage)
        if config.workers == 0:

            def ready() -> None:
                board.serving.value = 1
                on_ready(endpoint)

            _serve(serve_one, config, board, 0, stop, ready, with_service)
            return not board.flush_failed.value
        _Supervisor(config, board, serve_one, with_service).run(stop, lambda: on_ready(endpoint))
        return not board.flush_failed.value
    finally:
        hold.close()


class _Supervisor:
    def __init__(self, config: ServerConfig, board: StatsBoard, serve_one: ServeOne,
                 with_service: bool) -> None:
        self.config = config
        self.with_service = with_service
        self.board = board
        self.serve_one = serve_one
        self.ctx = multiprocessing.get_context("spawn")
        self.processes: dict[int, Any] = {}
        self.ready: dict[int, Any] = {}
        self.serving: set[int] = set()

    def _start(self, worker: int) -> None:
        ready = self.ctx.Event()
        process = self.ctx.Process(target=_child, name=f"libsrv-worker-{worker}",
                                   args=(self.serve_one, self.config, self.board, worker,
                                         ready, self.with_service), daemon=True)
        process.start()
        self.processes[worker], self.ready[worker] = process, ready

    def run(self, stop: StopFlag, announce: Callable[[], None]) -> None:
        try:
            for worker in range(1, self.config.workers + 1):
                self._start(worker)
            deadline = time.monotonic() + READY_SECONDS
            for worker, ready in self.ready.items():
                while not ready.wait(0.1):
                    if stop:
                        return
                    if not self.processes[worker].is_alive():
                        raise RuntimeError(f"worker {worker} died while starting (exit code "
                                           f"{self.processes[worker].exitcode})")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"worker {worker} was not serving after "
                                           f"{READY_SECONDS:g} s")
            self.serving = set(self.processes)
            self.board.serving.value = len(self.serving)
            announce()
            self._watch(stop)
        finally:
            self._stop_all()

    def _watch(self, stop: StopFlag) -> None:
        while not stop:
            sentinels = {p.sentinel: w for w, p in self.processes.items()}
            for fd in multiprocessing.connection.wait(list(sentinels), timeout=0.1):
                if stop:
                    return
                worker = sentinels[fd]  # type: ignore[index]
                code = self.processes[worker].exitcode
                log.warning("worker %d died (exit code %s); starting another", worker, code)
                self.serving.discard(worker)
                self.board.serving.value = len(self.serving)
                self.board.restarts[worker - 1] += 1
                stop.wait(RESTART_PAUSE)
                self._start(worker)
                self._await_ready(worker, stop)

    def _await_ready(self, worker: int, stop: StopFlag) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while not self.ready[worker].wait(0.1):
            if stop or not self.processes[worker].is_alive() or time.monotonic() > deadline:
                return  # its sentinel says the rest at the next turn
        self.serving.add(worker)
        self.board.serving.value = len(self.serving)

    def _stop_all(self) -> None:
        for process in self.processes.values():
            if process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
        deadline = time.monotonic() + STOP_SECONDS
        for process in self.processes.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker %s did not stop in %g s; killing it", process.name,
                            STOP_SECONDS)
                process.kill()
                process.join(STOP_SECONDS)
