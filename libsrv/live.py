"""`LiveCatalog`: a copy of the server's catalog that keeps itself up to date from the feed.

The zguide's Clone pattern: subscribe to the server's feed first (and hear from it, so that
the subscription is live), then take a snapshot (its pages say which change number they
reflect), then apply only the changes newer than what each book's page showed. Every change
carries its number; the numbers go up by one, so a missing one is a gap (the high-water mark
dropped messages of a slow subscriber, or the server restarted) and the copy takes a new
snapshot by itself. A heartbeat every second carries the last number published, so a gap at
the end of a burst is seen too; and a feed that falls silent (its process died or hangs) is
noticed from the missing heartbeats: after SILENT_SECONDS without a message the copy takes a
new snapshot (counted in `silences`), and again every SILENT_SECONDS while the silence lasts,
so it is never more than that behind.

Runs on a background thread (a notebook's kernel is never blocked); callbacks are called on
that thread.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import zmq

from libsrv.catalog import Book
from libsrv.client import DEFAULT_RETRIES, DEFAULT_TIMEOUT, LibraryClient
from libsrv.config import DEFAULT_HOST
from libsrv.feed import HEARTBEAT_SECONDS, HUGZ
from libsrv.protocol import MAX_PAGE
from libsrv.security import CurveKeys

RECEIVE_HWM = 100_000  # changes a subscriber queues before it starts losing them
SILENT_SECONDS = 3 * HEARTBEAT_SECONDS  # no message for this long: the feed is not there


class FeedUnavailable(RuntimeError):
    """The server publishes no feed (started with --no-pub, or the json storage)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One change as the feed published it."""

    seq: int
    isbn: str
    book: Book
    action: str | None
    id: str | None


def parse_change(frames: list[bytes]) -> Change | int | None:
    """A change, a heartbeat's number, or None for a message that is neither."""
    if len(frames) != 2:
        return None
    try:
        body = json.loads(frames[1])
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("seq"), int):
        return None
    if frames[0] == HUGZ:
        return body["seq"]
    book = body.get("book")
    if not isinstance(book, dict):
        return None
    return Change(body["seq"], str(body.get("isbn")), book, body.get("action"), body.get("id"))


def feed_endpoint(endpoint: str, port: int) -> str:
    """The feed's endpoint on the host of the request `endpoint`."""
    host = urlsplit(endpoint).hostname or DEFAULT_HOST
    return f"tcp://{f'[{host}]' if ':' in host else host}:{port}"


class LiveCatalog:
    """The catalog of the server at `endpoint`, kept current from its feed.

    `books()` and `get()` read the copy; `seq` is the number of the last change it reflects
    (every change up to it is in); `resyncs` counts snapshots taken, `gaps` the gaps found,
    `silences` the times the feed fell silent (`silent` says whether it is now).
    `on_change(change)` is called for each change applied, `on_resync(seq)` after each snapshot.
    Raises FeedUnavailable from `start` (or the constructor) when the server publishes nothing.
    """

    def __init__(self, endpoint: str, *, on_change: Callable[[Change], None] | None = None,
                 on_resync: Callable[[int], None] | None = None,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
                 curve: CurveKeys | None = None, receive_hwm: int = RECEIVE_HWM,
                 page: int = MAX_PAGE, start: bool = True) -> None:
        self.endpoint = endpoint
        self._client = LibraryClient(endpoint, timeout=timeout, retries=retries, curve=curve)
        self._curve = curve
        self._hwm = receive_hwm
        self._page = page
        self._on_change = [on_change] if on_change else []
        self._on_resync = [on_resync] if on_resync else []
        self._lock = threading.Lock()
        self._books: dict[str, Book] = {}
        self._asof: dict[str, int] = {}  # the change number each book's record is as of
        self._snap_min = 0
        self._last: int | None = None  # the last number received since the last snapshot
        self.seq = 0
        self.resyncs = 0
        self.gaps = 0
        self.silences = 0
        self.silent = False
        self.error: BaseException | None = None
        self.feed = ""
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    # -- reading the copy

    def books(self) -> list[Book]:
        with self._lock:
            return list(self._books.values())

    def get(self, isbn: str) -> Book | None:
        with self._lock:
            return self._books.get(isbn)

    def add_callback(self, on_change: Callable[[Change], None]) -> None:
        self._on_change.append(on_change)

    def wait_for(self, seq: int, timeout: float = 10.0) -> bool:
        """Wait until every change up to `seq` is in the copy; whether it happened in time."""
        deadline = time.monotonic() + timeout
        while self.seq < seq:
            if self.error is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.005)  # a poll with a deadline: the copy moves on another thread
        return True

    # -- life

    def start(self, timeout: float = 30.0) -> LiveCatalog:
        """Find the feed, subscribe, take the first snapshot (waits for it)."""
        first = self._client.snapshot(limit=1)
        port = first.raw.get("feed_port")
        if not first.success or not isinstance(port, int):
            self._client.close()
            raise FeedUnavailable(f"{self.endpoint} publishes no changes (a server started "
                                  "with --no-pub, or with the json storage)")
        self.feed = feed_endpoint(self.endpoint, port)
        self._thread = threading.Thread(target=self._run, name="libsrv-live", daemon=True)
        self._thread.start()
        if not self._synced.wait(timeout) and self.error is None:
            raise TimeoutError(f"no snapshot from {self.endpoint} in {timeout:g} s")
        if self.error is not None:
            raise self.error
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)

    def __enter__(self) -> LiveCatalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.linger = 0
        sub.rcvhwm = self._hwm
        try:
            if self._curve is not None:
                self._curve.apply(sub)
            sub.subscribe(b"")
            sub.connect(self.feed)
            # A subscription takes effect at the publisher some time after `connect`: what is
            # published before then never arrives, and a change made right after the copy says
            # it is ready would show only in a later snapshot, never as a change. The first
            # message that arrives (a heartbeat comes every second) proves the subscription
            # live; the snapshot after it holds whatever that message said.
            if sub.poll(SILENT_SECONDS * 1000):
                sub.recv_multipart()
            self._resync(sub)
            heard = time.monotonic()
            while not self._stop.is_set():
                if sub.poll(100):
                    self.silent = False
                    self._handle(sub.recv_multipart(), sub)
                    heard = time.monotonic()
                elif time.monotonic() - heard > SILENT_SECONDS:
                    self.silences += not self.silent
                    self.silent = True
                    self._resync(sub)  # the copy as of now, and the feed's port again
                    heard = time.monotonic()
        except BaseException as error:  # a thread must not die silently: `error` says why
            self.error = error
            self._synced.set()
        finally:
            sub.close()
            ctx.term()
            self._client.close()

    # -- the Clone pattern

    def _resync(self, sub: zmq.Socket) -> None:
        """Take a snapshot, page by page, while the feed queues up behind it."""
        books: dict[str, Book] = {}
        asof: dict[str, int] = {}
        numbers: list[int] = []
        offset = 0
        while True:
            reply = self._client.snapshot(offset=offset, limit=self._page)
            if not reply.success or not isinstance(reply.raw.get("seq"), int):
                raise FeedUnavailable(f"snapshot refused: {reply.code} {reply.message}")
            page: list[Book] = reply.raw.get("books") or []
            numbers.append(reply.raw["seq"])
            port = reply.raw.get("feed_port")
            if offset == 0 and isinstance(port, int):
                self._follow(sub, feed_endpoint(self.endpoint, port))
            for book in page:
                books[book["ISBN"]] = book
                asof[book["ISBN"]] = reply.raw["seq"]
            offset += len(page)
            if not page or offset >= int(reply.raw.get("total", 0)):
                break
        with self._lock:
            self._books, self._asof = books, asof
            self._snap_min = min(numbers)
            self._last = None
            self.seq = self._snap_min  # every page reflects at least this much
            self.resyncs += 1
        for callback in self._on_resync:
            callback(self.seq)
        self._synced.set()

    def _follow(self, sub: zmq.Socket, feed: str) -> None:
        """Subscribe at `feed` if the server now publishes there."""
        if feed != self.feed:
            with contextlib.suppress(zmq.ZMQError):
                sub.disconnect(self.feed)
            sub.connect(feed)
            self.feed = feed

    def _handle(self, frames: list[bytes], sub: zmq.Socket) -> None:
        message = parse_change(frames)
        if message is None:
            return
        number = message if isinstance(message, int) else message.seq
        expected = self._snap_min + 1 if self._last is None else self._last + 1
        if isinstance(message, int):  # heartbeat: the last number published
            if number >= expected:  # something was published that never reached us
                self.gaps += 1
                self._resync(sub)
            elif self._last is not None and number < self._last:
                self._resync(sub)  # the numbering went back: a new catalog or journal
            return
        if number > expected or (self._last is not None and number < expected):
            self.gaps += number > expected
            self._resync(sub)
            return
        self._last = number
        applied = False
        with self._lock:
            if number > self._asof.get(message.isbn, -1):
                self._books[message.isbn] = message.book
                self._asof[message.isbn] = number
                applied = True
            self.seq = max(self.seq, number)
        if applied:
            for callback in self._on_change:
                callback(message)

    def describe(self) -> dict[str, Any]:
        return {"feed": self.feed, "seq": self.seq, "books": len(self._books),
                "resyncs": self.resyncs, "gaps": self.gaps, "silences": self.silences,
                "silent": self.silent}
