"""The live feed: every change to the catalog, published on a PUB socket in journal order.

The zguide's Clone pattern (chapter 5). The journal already orders every change: writers append
under the catalog lock, each line stamped with its number ``q`` (see `libsrv.storage.journal`).
The feed reads the journal as any other process does and publishes the lines that hold a change,
so changes go out in the file's order whatever worker applied them, each once (a number it has
published is never published again, so the lines a compaction carries into the next generation
are not repeated), and only once they are in the file.

The feed runs in a process of its own (`FeedProcess`), polling the journal every few
milliseconds: publishing costs the broker, which every request crosses, nothing.

One message per change, two frames: the book's ISBN (subscribers may filter on one book) and a
JSON object ``{"seq", "isbn", "book", "action", "id"}``. Every second, and right after starting,
a heartbeat ``[b"HUGZ", {"seq": S}]`` says the last number published, so a subscriber that lost
the last messages (dropped by the high-water mark) notices without waiting for the next change.
A subscriber takes a `snapshot` (which says the number it reflects) and applies later changes:
`libsrv.live.LiveCatalog`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import multiprocessing
import multiprocessing.connection
import signal
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

import zmq

from libsrv.config import DEFAULT_FEED_HWM
from libsrv.security import CurveServer
from libsrv.service import BROKER_KEY_MARK
from libsrv.storage.files import StorageError
from libsrv.storage.journal import journal_path
from libsrv.storage.linelog import LineLog, Record

log = logging.getLogger("libsrv.feed")

HUGZ = b"HUGZ"  # the heartbeat's topic (the zguide's name)
HEARTBEAT_SECONDS = 1.0
PUMP_SECONDS = 0.005  # how often the feed process looks at the journal (a `stat` when idle)
START_SECONDS = 30.0


def change_frames(record: Record) -> list[bytes]:
    """The message for one journal line holding a change."""
    book = record["book"]
    rid = record.get("id")
    if isinstance(rid, str) and rid.startswith(BROKER_KEY_MARK):
        rid = None  # the broker's key for an id-less request: not the client's
    body = {"seq": record["q"], "isbn": book["ISBN"], "book": book, "action": record.get("a"),
            "id": rid}
    return [str(book["ISBN"]).encode(), json.dumps(body, ensure_ascii=False).encode()]


def heartbeat_frames(seq: int) -> list[bytes]:
    return [HUGZ, json.dumps({"seq": seq}).encode()]


class JournalTail:
    """The changes appended to a catalog's journal since this view was opened, in file order.

    Reads without the lock and never writes. `seq` is the last number handed out; history from
    before the view was opened is not replayed.
    """

    def __init__(self, catalog: Path | str) -> None:
        self._path = journal_path(catalog)
        self._log = LineLog(self._path, exclusive=False)
        self.seq = 0
        self._reopen(publish=False)

    def _reopen(self, *, publish: bool) -> list[Record]:
        if not self._path.exists():
            return []
        records = self._log.open()
        self.seq = max(self.seq, int(self._log.header.get("seq") or 0))
        new = self._new(records)  # read either way: `seq` must move past them
        return new if publish else []

    def _new(self, records: list[Record]) -> list[Record]:
        out = []
        for record in records:
            if "gen" in record:
                # a snapshot that holds changes this view never read (it fell more than one
                # generation behind): jump, and the subscribers see the gap
                self.seq = max(self.seq, int(record.get("seq") or 0))
                continue
            number = record.get("q")
            if "book" not in record or not isinstance(number, int) or number <= self.seq:
                continue
            out.append(record)
            self.seq = number
        return out

    def changes(self) -> list[Record]:
        """The changes appended since the last call."""
        if not self._path.exists():
            return []  # the journal is being replaced, or was deleted: look again later
        records = self._log.catch_up()
        if records is None:
            return self._reopen(publish=True)
        return self._new(records)

    def close(self) -> None:
        self._log.close()


class Feed:
    """The server's PUB socket and the journal tail behind it. Call `pump` often (the feed
    process does, every PUMP_SECONDS); it publishes what is new and the heartbeat when due.
    Never raises once started: a journal it cannot read is logged and tried again."""

    def __init__(self, catalog: Path | str, bind: str, *, curve: str | None = None,
                 hwm: int = DEFAULT_FEED_HWM) -> None:
        self._tail = JournalTail(catalog)
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.PUB)
        self._sock.linger = 0
        self._sock.sndhwm = hwm
        self._curve = CurveServer(self._ctx, curve) if curve else None
        try:
            if self._curve is not None:
                self._curve.apply(self._sock)
            self._sock.bind(bind)
        except zmq.ZMQError:
            self.close()
            raise
        self.endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        self.published = 0
        self._next_beat = 0.0
        self._failing = False

    @property
    def seq(self) -> int:
        return self._tail.seq

    def pump(self) -> int:
        """Publish the changes that reached the journal, and the heartbeat when it is due; how
        many changes."""
        now = time.monotonic()
        try:
            changes = self._tail.changes()
        except (StorageError, OSError, ValueError) as error:
            if not self._failing:
                log.warning("live feed: cannot read the journal (will retry): %s", error)
            self._failing = True
            changes = []
        else:
            self._failing = False
        for record in changes:
            self._sock.send_multipart(change_frames(record))
        self.published += len(changes)
        if now >= self._next_beat:
            self._next_beat = now + HEARTBEAT_SECONDS
            self._sock.send_multipart(heartbeat_frames(self.seq))
        return len(changes)

    def close(self) -> None:
        self._tail.close()
        self._sock.close()
        if self._curve is not None:
            self._curve.stop()
        self._ctx.term()


class FeedError(RuntimeError):
    """The feed could not start (its port is taken, say); the message says why, and
    `port_taken` whether that was the reason."""

    def __init__(self, message: str, *, port_taken: bool = False) -> None:
        super().__init__(message)
        self.port_taken = port_taken


class FeedProcess:
    """A `Feed` in a process of its own, publishing until `close` (or until the process that
    started it dies). Raises FeedError when it cannot bind.

    The two talk over one pipe: the feed says where it listens, and stops when the pipe has
    something to read or is closed (the parent ended, however it ended). No shared lock or
    semaphore is involved, so nothing the feed does can block the server."""

    def __init__(self, catalog: Path | str, bind: str, *, curve: str | None = None,
                 hwm: int = DEFAULT_FEED_HWM) -> None:
        spawn = multiprocessing.get_context("spawn")
        self._pipe, theirs = spawn.Pipe()
        self._process = spawn.Process(target=feed_main, name="libsrv-feed", daemon=True,
                                      args=(str(catalog), bind, curve, hwm, theirs))
        self._process.start()
        theirs.close()
        try:
            if not self._pipe.poll(START_SECONDS):
                raise FeedError(f"the feed process did not start in {START_SECONDS:g} s")
            status, detail, *code = self._pipe.recv()
        except (EOFError, OSError) as error:
            self.close()
            raise FeedError(f"the feed process ended at start: {error}") from None
        except FeedError:
            self.close()
            raise
        if status != "ok":
            self.close()
            raise FeedError(f"the live feed cannot start on {bind}: {detail} (another "
                            "program on that port? --pub-port 0 picks a free one, --no-pub "
                            "turns the feed off)", port_taken=code == [errno.EADDRINUSE])
        self.endpoint = detail
        self.port = int(detail.rsplit(":", 1)[1])

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def sentinel(self) -> int:
        return self._process.sentinel

    @property
    def exitcode(self) -> int | None:
        return self._process.exitcode

    def close(self, timeout: float = 10.0) -> None:
        """Publish what is left, then stop."""
        with contextlib.suppress(OSError):
            self._pipe.close()  # the feed sees the end of the pipe
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)


class SupervisedFeed:
    """The server's feed, watched as the broker watches a worker: when its process dies, the
    death is logged and a new one starts on the same endpoint (trying again, waiting longer
    each time, while the port cannot be bound yet). A restarted feed goes on from the
    journal's last change; subscribers see the gap in the numbers and take a new snapshot.
    `restarts` counts them."""

    RETRY_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)

    def __init__(self, catalog: Path | str, bind: str, *, curve: str | None = None,
                 hwm: int = DEFAULT_FEED_HWM) -> None:
        self._start = lambda endpoint: FeedProcess(catalog, endpoint, curve=curve, hwm=hwm)
        self._feed = self._start(bind)
        self.endpoint = self._feed.endpoint
        self.port = self._feed.port
        self.restarts = 0
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="libsrv-feed-watch",
                                        daemon=True)
        self._thread.start()

    @property
    def pid(self) -> int | None:
        return self._feed.pid

    def _watch(self) -> None:
        while not self._closing.is_set():
            if not multiprocessing.connection.wait([self._feed.sentinel], timeout=0.5):
                continue
            if self._closing.is_set():
                return
            log.warning("the live feed (PID %s) exited with code %s; starting it again on %s",
                        self._feed.pid, self._feed.exitcode, self.endpoint)
            self._restart()

    def _restart(self) -> None:
        attempt = 0
        while not self._closing.is_set():
            try:
                feed = self._start(self.endpoint)
            except FeedError as error:
                delay = self.RETRY_SECONDS[min(attempt, len(self.RETRY_SECONDS) - 1)]
                attempt += 1
                log.error("the live feed cannot start again yet (%s); trying in %g s", error,
                          delay)
                self._closing.wait(delay)
                continue
            with self._lock:
                if self._closing.is_set():
                    feed.close()
                    return
                self._feed = feed
                self.restarts += 1
            return

    def close(self, timeout: float = 10.0) -> None:
        """Publish what is left, then stop. Once closing is set no restart takes the feed's
        place; the feed's end wakes the watch, which then returns."""
        self._closing.set()
        with self._lock:
            feed = self._feed
        feed.close(timeout)
        self._thread.join(timeout)


def feed_main(catalog: str, bind: str, curve: str | None, hwm: int, pipe: Connection) -> None:
    """The feed process: bind, say where (or why not), publish until the pipe to the server
    has something to read or ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which stops us
    try:
        feed = Feed(catalog, bind, curve=curve, hwm=hwm)
    except (zmq.ZMQError, StorageError, OSError) as error:
        pipe.send(("error", str(error), getattr(error, "errno", None)))
        return
    try:
        pipe.send(("ok", feed.endpoint))
        while not pipe.poll(PUMP_SECONDS):
            feed.pump()
        feed.pump()  # the server's last changes
    except OSError:
        pass  # the server is gone: nothing left to publish to anyone it answered
    finally:
        feed.close()
