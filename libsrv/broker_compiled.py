"""The broker with its data path compiled (`libsrv/data_path.c`): every request and reply
crosses a C loop on a thread of the broker process, and this Python loop does the rest, as
the Python broker does: it starts, watches, kills and replaces the worker processes, writes the
replies the broker makes itself (INTERNAL, BAD_REQUEST, in the request's language), counts
them in the stats, and logs.

A worker's life is still `BrokerState`'s table: the C loop reports READY and stuck workers,
this loop reports starts and deaths, and `BrokerState` decides what follows (replacements,
their back-off, giving up when workers keep dying). It holds no requests here: those are the
C loop's, which decides for them by the same rules as `BrokerState` (credits, the worker with
the most room, re-sends, MAX_ATTEMPTS, stuck kills, the per-connection bounds of
`libsrv.peers`). The two talk over an inproc PAIR socket:

- to C: ``START row id`` (before the process starts), ``DIED id``, ``ANSWER accepted
  frames...`` (a reply the broker wrote), ``UNSTAFFED 0|1``, ``STOP``, ``ABORT``
- from C: ``READY id``, ``KILL id``, ``INTERNAL reason frames...`` and ``REFUSE count
  envelope...`` (replies to write), ``WARN text id``
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import zmq

from libsrv.broker import Broker, worker_main
from libsrv.broker_core import DIED_REASON, READY, UNSTAFFED_REASON
from libsrv.config import ServerConfig
from libsrv.data_path_build import chosen
from libsrv.server import BLOCKED_RETRY_MS, POLL_MS, StopFlag
from libsrv.stats import StatsBoard

log = logging.getLogger("libsrv.server")

# why the C loop asks for an INTERNAL reply, in the words the Python broker uses
_INTERNAL_REASONS = {b"died": DIED_REASON, b"unstaffed": UNSTAFFED_REASON}
ABORT_SECONDS = 10.0  # how long an ending broker waits for the C loop to return


@dataclass
class CompiledBroker(Broker):
    """`Broker` with the compiled data path; `library` from `libsrv.data_path_build.load`."""

    library: ctypes.CDLL | None = None

    def _open_data_path(self, ctx: zmq.Context, frontend: zmq.Socket,
                        backend: zmq.Socket) -> None:
        endpoint = f"inproc://libsrv-data-path-{id(self)}"
        self._pipe, c_end = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        for end in (self._pipe, c_end):
            end.linger = 0
            # never full, so neither side can block the other: what crosses is bounded by
            # MAX_ASKS (and a worker's READY and stuck reports)
            end.sndhwm = end.rcvhwm = 0
        self._pipe.bind(endpoint)
        c_end.connect(endpoint)
        self._c_end = c_end
        self._unstaffed = False
        timeout = self.state.worker_timeout
        run = self.library.libsrv_data_path_run
        # From here on the sockets belong to the C loop until it returns.
        self._thread = threading.Thread(
            target=run, name="libsrv-data-path", daemon=True,
            args=(frontend.underlying, backend.underlying, c_end.underlying, timeout,
                  POLL_MS, BLOCKED_RETRY_MS))
        self._thread.start()

    def _close_data_path(self) -> None:
        thread = getattr(self, "_thread", None)
        if thread is None:
            return
        if thread.is_alive():
            self._pipe.send(b"ABORT")
            thread.join(ABORT_SECONDS)
        if thread.is_alive():  # never seen: the sockets stay open rather than pulled from it
            log.error("the data path did not stop in %.0f s", ABORT_SECONDS)
            return
        self._pipe.close()
        self._c_end.close()

    def _starting(self, row: int, identity: bytes) -> None:
        self._pipe.send_multipart([b"START", str(row).encode(), identity])

    def _ended(self, identity: bytes) -> None:
        self._pipe.send_multipart([b"DIED", identity])

    def _loop(self, frontend: zmq.Socket, backend: zmq.Socket, endpoint: str,
              on_ready: Callable[[str], None]) -> None:
        state, pipe, thread = self.state, self._pipe, self._thread
        announced = stopping = False
        poller = zmq.Poller()
        poller.register(pipe, zmq.POLLIN)
        self.stop.watch(poller)
        sentinels: dict[int, bytes] = {}
        while thread.is_alive():
            now = time.monotonic()
            if self.stop and not stopping:
                stopping = True
                state.stop(now)
                pipe.send(b"STOP")  # the C loop returns when its requests are answered
            sentinels = self._watch_sentinels(poller, sentinels)
            events = dict(poller.poll(POLL_MS))
            now = time.monotonic()
            self.stop.woke(events)
            if pipe in events:
                self._drain_pipe(now)
            for fd, identity in sentinels.items():
                if fd in events:
                    self._on_death(identity, now)
            state.tick(now)
            self._carry_out(frontend, backend)
            unstaffed = not state.workers and bool(state.spawn_due)
            if unstaffed != self._unstaffed:
                self._unstaffed = unstaffed
                pipe.send_multipart([b"UNSTAFFED", b"1" if unstaffed else b"0"])
            announced = self._say_serving(announced, endpoint, on_ready)
        thread.join()

    def _drain_pipe(self, now: float) -> None:
        state, pipe = self.state, self._pipe
        while True:
            try:
                kind, *args = pipe.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if kind == b"READY":
                state.from_worker([args[0], b"", READY, b"1"], now)
            elif kind == b"KILL":
                worker = state.workers.get(args[0])
                if worker is not None:
                    log.warning("Worker %d has answered nothing for %.1f s; killing it",
                                worker.row + 1, state.worker_timeout)
                state.worker_stuck(args[0])
            elif kind == b"INTERNAL":
                reason, *msg = args
                frame = state.internal(msg, _INTERNAL_REASONS[reason])
                pipe.send_multipart([b"ANSWER", b"1", *msg[:-1], frame])
            elif kind == b"REFUSE":
                count, *envelope = args
                frame = state.refusal(int(count))
                pipe.send_multipart([b"ANSWER", b"0", *envelope, frame])
            elif kind == b"WARN":
                text, identity = args
                worker = state.workers.get(identity)
                row = worker.row + 1 if worker is not None else "?"
                log.warning("Worker %s %s", row, text.decode())


def run_broker(config: ServerConfig, stop: StopFlag, on_ready: Callable[[str], None],
               worker_entry: Callable[..., None] = worker_main) -> bool:
    """Serve with a broker and `config.workers` worker processes until `stop` is set, on the
    compiled data path when `config.data_path` allows and this machine can build it, else on
    the Python one (the log says which); whether the catalog file is current on return
    (every worker's last flush worked)."""
    board = StatsBoard(config.workers, config.storage)
    library, said = chosen(config.data_path)
    log.info("%s", said)
    if library is None:
        Broker(config, board, stop, worker_entry=worker_entry).run(on_ready)
    else:
        board.compiled.value = 1
        CompiledBroker(config, board, stop, worker_entry=worker_entry,
                       library=library).run(on_ready)
    return not board.flush_failed.value
