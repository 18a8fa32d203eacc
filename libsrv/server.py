"""The single REP server (``--workers 0``) and what every server process shares: the stop
flag, opening the service, housekeeping, request logging and the final flush. The broker and
its workers (``--workers N``) are in `libsrv.broker`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType

import zmq
import zmq.backend

from libsrv.config import ServerConfig
from libsrv.envelope import KEPT_FRAMES, reply_to, request_index
from libsrv.library import Policy
from libsrv.peers import PeerQueues
from libsrv.protocol import MAX_FRAME_BYTES
from libsrv.security import CurveServer
from libsrv.service import Handled, Service, refusal_frame
from libsrv.stats import StatsBoard
from libsrv.storage import Storage, StorageError, open_storage
from libsrv.wire import NOBLOCK, sender

log = logging.getLogger("libsrv.server")
request_log = logging.getLogger("libsrv.requests")

POLL_MS = 100
IDLE_SECONDS = 1.0  # quiet time after which a process does its storage housekeeping
# Frames up to this size are read and refused with BAD_REQUEST; a larger one makes ZeroMQ drop
# the sender's connection before the frame is in memory.
HARD_FRAME_LIMIT = 2 * MAX_FRAME_BYTES
# Messages queued per client connection, each way. A REQ client has one request out at a time,
# so this only bounds what a client that floods, or never reads its replies, makes the server
# hold: at most PEER_QUEUE requests of HARD_FRAME_LIMIT bytes in, and PEER_QUEUE replies out (a
# reply is at most a page of MAX_PAGE books, about 200 KB of generated catalog): about 6 MB per
# such connection, where libzmq's default of 1,000 each way allowed hundreds of MB.
PEER_QUEUE = 16
# A connection that has not finished the ZMTP handshake by then is dropped (libzmq's default
# is 30 s): idle connections must not hold the server's file descriptors for long.
HANDSHAKE_MS = 5000
MAX_OPEN_FILES = 1 << 20
BLOCKED_RETRY_MS = 5  # how soon a reply that a client's full queue refused is offered again
BATCH = 64  # client messages read at one wake-up before their replies go out


def raise_open_file_limit() -> tuple[int, int]:
    """Raise this process's soft limit on open files to its hard limit (each client connection
    is one), so that a thousand idle connections cannot lock everyone else out under the
    common soft limit of 1,024. Workers inherit it. Returns (before, after)."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return 0, 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            return soft, wanted
        except (ValueError, OSError):
            pass
    return soft, soft


def listening_options(sock: zmq.Socket) -> None:
    """Options for a socket that faces clients (set before it binds): frame cap, queues per
    peer, handshake deadline, no linger."""
    sock.linger = 0
    sock.setsockopt(zmq.MAXMSGSIZE, HARD_FRAME_LIMIT)
    sock.setsockopt(zmq.RCVHWM, PEER_QUEUE)
    sock.setsockopt(zmq.SNDHWM, PEER_QUEUE)
    sock.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_MS)


class StopFlag:
    """Set by SIGINT or SIGTERM (or by `set()`), polled by the server loops.

    The signal handler only assigns an attribute. It must take no lock: a handler runs in the
    main thread between two bytecodes, so a SIGTERM arriving while the SIGINT handler held an
    `Event`'s lock ran a second handler that waited forever for that same lock (the server then
    ignored every signal: Ctrl-C followed by SIGTERM hung about one stop in fifteen).

    A loop that polls ZeroMQ sockets `watch`es the flag in its poller: a signal or `set()` then
    wakes the poll at once (Python's wakeup descriptor, written by the C-level handler, which
    takes no lock either), so a stop does not wait for the poll's timeout."""

    WAKE_SECONDS = 0.05  # how often `wait` looks for a signal (a handler cannot wake it)

    def __init__(self) -> None:
        self._event = threading.Event()
        self._signalled = False
        self._wake_in, self._wake_out = socket.socketpair()
        for end in (self._wake_in, self._wake_out):
            end.setblocking(False)

    def install(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._on_signal)
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.set_wakeup_fd(self._wake_out.fileno(), warn_on_full_buffer=False)
        return self

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signalled = True

    def set(self) -> None:
        """Set the flag (from any thread; never from a signal handler)."""
        self._event.set()
        with contextlib.suppress(OSError):  # full: a wake-up is already pending
            self._wake_out.send(b"\0")

    def watch(self, poller: zmq.Poller) -> None:
        """Register the flag with `poller`: its poll returns as soon as the flag is set or a
        signal arrives. After each poll, pass its events to `woke`."""
        poller.register(self._wake_in.fileno(), zmq.POLLIN)

    def woke(self, events: dict[object, int] | list[tuple[object, int]]) -> bool:
        """Whether this flag woke the poll that returned `events`; it is made quiet again
        (otherwise every later poll would return at once)."""
        fd = self._wake_in.fileno()
        if fd not in (events if isinstance(events, dict) else dict(events)):
            return False
        with contextlib.suppress(OSError):  # raised once drained
            while self._wake_in.recv(4096):
                pass
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set (or `timeout` seconds); True when set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self:
            left = self.WAKE_SECONDS if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            self._event.wait(min(left, self.WAKE_SECONDS))
        return True

    def __bool__(self) -> bool:
        return self._signalled or self._event.is_set()


def open_service(config: ServerConfig, board: StatsBoard, worker: int,
                 storage: Storage | None = None) -> Service:
    if storage is None:
        storage = open_storage(config.storage, config.db, lock_timeout=config.lock_timeout,
                               locking=config.locking, fsync=config.fsync,
                               remember_seconds=config.remember_seconds)
    # The catalog just loaded lives as long as the process: keep the cyclic garbage collector
    # from walking every book on some request (tens of ms with 20,000 books).
    gc.freeze()
    return Service(storage, Policy(loan_days=config.loan_days, lang=config.lang,
                                     title_loan_days=config.title_loan_days), board, worker,
                   feed_port=config.pub_port if config.publish else None)


def housekeeping(service: Service, name: str) -> None:
    """The storage's idle-time work; a failure is logged, never raised."""
    try:
        service.storage.idle()
    except StorageError as error:
        log.warning("%s: housekeeping failed: %s", name, error)
    except Exception:
        log.exception("%s: housekeeping failed", name)


def log_request(name: str, pid: int, handled: Handled) -> None:
    if request_log.isEnabledFor(logging.INFO):
        request_log.info("[%s] (PID %d) %s → %s", name, pid, handled.action, handled.code)


def client_reader(sock: zmq.Socket) -> Callable[[], tuple[list[bytes], int]]:
    """A function that reads one message from a client-facing ROUTER (raising zmq.Again
    when none is queued), frame by frame: its first KEPT_FRAMES frames, and how many more
    were read and dropped (a request is one frame after its envelope; a message of hundreds
    is never kept whole)."""
    recv = zmq.backend.Socket.recv.__get__(sock)
    get = zmq.backend.Socket.get.__get__(sock)
    noblock, rcvmore = int(zmq.NOBLOCK), int(zmq.RCVMORE)

    def read() -> tuple[list[bytes], int]:
        msg = [recv(noblock)]
        extra = 0
        while get(rcvmore):
            frame = recv()
            if len(msg) < KEPT_FRAMES:
                msg.append(frame)
            else:
                extra += 1
        return msg, extra

    return read


def send_replies(send: Callable[[list[bytes]], None], replies: list[list[bytes]],
                 peers: PeerQueues) -> None:
    """Hand replies ``[peer, ..., b"", reply]`` to a client-facing ROUTER (ROUTER_MANDATORY)
    through `send` (a `libsrv.wire.sender` with NOBLOCK), back to back: a reply a full queue
    refuses is kept by `peers`; one to a client that went away is dropped."""
    for reply in replies:
        try:
            send(reply)
        except zmq.Again:
            peers.blocked(reply)
        except zmq.ZMQError:  # EHOSTUNREACH: the client disconnected
            peers.gone(reply[0])


def _serve_router(sock: zmq.Socket, service: Service, stop: StopFlag, name: str) -> None:
    """Answer requests on a client-facing ROUTER until `stop` is set: every queued request at
    each wake-up, the replies back to back, under `PeerQueues`' flood protection."""
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    stop.watch(poller)
    last_activity = time.monotonic()
    pid = os.getpid()
    peers = PeerQueues()
    handle = service.handle
    read, send = client_reader(sock), sender(sock, NOBLOCK)
    while not stop:
        releasable = peers.any_releasable
        owed = releasable or peers.any_blocked
        wait_ms = 0 if releasable else BLOCKED_RETRY_MS if owed else POLL_MS
        ready = poller.poll(wait_ms)
        stop.woke(ready)  # the requests that came with it are answered; then the loop ends
        if not ready and time.monotonic() - last_activity >= IDLE_SECONDS:
            housekeeping(service, name)  # also while a client that reads nothing is owed
            last_activity = time.monotonic()
        if not ready and not owed:
            continue
        logging_on = request_log.isEnabledFor(logging.INFO)
        accepted = peers.release()  # before the retry: a client still blocked waits
        send_replies(send, peers.retry(), peers)  # before reading: refused again, it waits
        replies: list[list[bytes]] = []
        for _ in range(BATCH):
            try:
                msg, extra = read()
            except zmq.Again:
                break
            at = request_index(msg)
            if at is None:
                continue  # not a REQ envelope: there is no way to answer it
            if len(msg) > at + 1 or extra:
                replies.append([*msg[:at], refusal_frame(
                    service.policy.lang, "frames", count=len(msg) - at + extra)])
                service.board.count_front("invalid", "BAD_REQUEST")
                continue
            if peers.admit(msg):
                accepted.append(msg)
        for msg in accepted:  # each is its envelope and one request frame
            handled = handle(msg[-1:])
            replies.append(reply_to(msg, handled.frame))
            peers.answered(msg[0])
            if logging_on:
                log_request(name, pid, handled)
        send_replies(send, replies, peers)
        if accepted or replies:
            last_activity = time.monotonic()


def flush_and_close(service: Service, name: str) -> None:
    """Bring the catalog file up to date and close the storage (at shutdown); a failure is
    logged and marked on the service's board (`flush_failed`)."""
    try:
        service.storage.flush()
    except Exception as error:
        service.board.flush_failed.value = 1
        log.error("%s: could not bring the catalog file up to date: %s", name, error)
    service.storage.close()


# ---------------------------------------------------------------- --workers 0


def run_single(config: ServerConfig, storage: Storage, stop: StopFlag,
               on_ready: Callable[[str], None]) -> bool:
    """Serve on one REP socket until `stop` is set; whether the catalog file is current on
    return (else its last flush failed, and the journal holds what it lacks)."""
    board = StatsBoard(0, config.storage)
    board.pids[0] = os.getpid()
    board.serving.value = 1
    service = open_service(config, board, 0, storage)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    listening_options(sock)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a full queue says so; nothing is dropped
    curve = CurveServer(ctx, config.curve) if config.curve else None
    try:
        if curve is not None:
            curve.apply(sock)
        sock.bind(config.bind_endpoint)
        on_ready(sock.getsockopt_string(zmq.LAST_ENDPOINT))
        _serve_router(sock, service, stop, "Server")
    finally:
        sock.close()
        if curve is not None:
            curve.stop()
        ctx.term()
        flush_and_close(service, "server")
    return not board.flush_failed.value
