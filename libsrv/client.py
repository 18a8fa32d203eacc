"""`LibraryClient`: the reliable client (the zguide's Lazy Pirate pattern).

Each call sends one request with a fresh id and waits at most `timeout` seconds. On silence it
closes the REQ socket (linger 0, so nothing stale is left queued), opens a new one and sends the
same request again with the same id, up to `retries` times; the server answers a repeated write
id with the original reply instead of applying it twice. After the last try it raises
`ServerUnreachable`. The client is usable again after any failure.

A client object is not thread-safe (ZeroMQ sockets are not): use one per thread.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import zmq

from libsrv.config import DEFAULT_HOST, DEFAULT_PORT, client_endpoint, read_config_file
from libsrv.protocol import Action, decode_reply, encode_request
from libsrv.security import CurveKeys

DEFAULT_ENDPOINT = f"tcp://{DEFAULT_HOST}:{DEFAULT_PORT}"
DEFAULT_TIMEOUT = 2.5
DEFAULT_RETRIES = 2


class ServerUnreachable(ConnectionError):
    """No reply came from the server within the timeout, after every retry."""


class BadReply(RuntimeError):
    """The server answered something that is not a reply of this protocol."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A server reply. `code` is one of `libsrv.protocol.Code`; `raw` is the whole object."""

    success: bool
    code: str
    message: str
    book: dict[str, Any] | None = None
    books: list[dict[str, Any]] = field(default_factory=list)
    id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    lang: str = "en"  # the language its card's labels are shown in (the message is the server's)

    @property
    def found(self) -> bool | None:
        """On queries: whether the book exists (the class's page reads this)."""
        return self.raw.get("found")

    def _repr_html_(self) -> str:
        from libsrv.cards import reply_card  # HTML only: no widgets needed

        return reply_card(self, self.lang)

    @classmethod
    def from_dict(cls, obj: dict[str, Any], lang: str = "en") -> Reply:
        return cls(success=bool(obj.get("success")), code=str(obj.get("code")),
                   message=str(obj.get("message", "")), book=obj.get("book"),
                   books=list(obj.get("books") or []), id=obj.get("id"), raw=obj, lang=lang)


class LibraryClient:
    """A client for one server endpoint, e.g. ``tcp://192.168.1.20:5555``.

    ``with LibraryClient("tcp://127.0.0.1:5555", timeout=2.0, retries=2) as lib:
    lib.loan_isbn("9788437604947", "Ana")``. With `curve` (see `libsrv.security`) the
    connection is encrypted and authenticated; a server that does not admit the key never
    answers, which shows as ServerUnreachable.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES, context: zmq.Context | None = None,
                 curve: CurveKeys | None = None, lang: str = "en") -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if retries < 0:
            raise ValueError("retries cannot be negative")
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self.curve = curve
        self.lang = lang
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._prefix = os.urandom(6).hex()
        self._counter = itertools.count(1)

    @classmethod
    def from_config(cls, path: Path | str, **kwargs: Any) -> LibraryClient:
        """A client for the server named in a class-style config.json ("client" section)."""
        return cls(client_endpoint(read_config_file(path)), **kwargs)

    # -- plumbing

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            sock = self._ctx.socket(zmq.REQ)
            sock.linger = 0
            sock.sndtimeo = int(self.timeout * 1000)
            if self.curve is not None:
                self.curve.apply(sock)
            sock.connect(self.endpoint)
            self._sock = sock
        return self._sock

    def _reset(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def close(self) -> None:
        self._reset()

    def __enter__(self) -> LibraryClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def new_id(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"

    def request(self, action: Action | str, **fields: Any) -> Reply:
        """Send one request (with a fresh id unless `id` is given) and return the reply."""
        fields.setdefault("id", self.new_id())
        payload = encode_request(action, **fields)
        attempts = 1 + self.retries
        for _ in range(attempts):
            sock = self._socket()
            try:
                sock.send(payload)
                if sock.poll(int(self.timeout * 1000), zmq.POLLIN):
                    frame = sock.recv()
                    break
            except zmq.ZMQError:
                pass
            self._reset()
        else:
            raise ServerUnreachable(
                f"no reply from {self.endpoint} after {attempts} attempt(s) of "
                f"{self.timeout:g} s each; is the server running and reachable?")
        try:
            return Reply.from_dict(decode_reply(frame), self.lang)
        except (ValueError, UnicodeDecodeError) as error:
            raise BadReply(f"{self.endpoint} sent something that is not a reply: "
                           f"{frame[:80]!r}") from error

    # -- one method per action

    def ping(self) -> Reply:
        return self.request(Action.PING)

    def query_isbn(self, isbn: str) -> Reply:
        return self.request(Action.QUERY_ISBN, isbn=isbn)

    def query_title(self, title: str, *, offset: int = 0, limit: int | None = None) -> Reply:
        return self.request(Action.QUERY_TITLE, title=title, offset=offset or None, limit=limit)

    def loan_isbn(self, isbn: str, borrower: str) -> Reply:
        return self.request(Action.LOAN_ISBN, isbn=isbn, borrower=borrower)

    def loan_title(self, title: str, borrower: str) -> Reply:
        return self.request(Action.LOAN_TITLE, title=title, borrower=borrower)

    def return_isbn(self, isbn: str) -> Reply:
        return self.request(Action.RETURN_ISBN, isbn=isbn)

    def catalog(self, *, offset: int = 0, limit: int | None = None) -> Reply:
        return self.request(Action.CATALOG, offset=offset or None, limit=limit)

    def snapshot(self, *, offset: int = 0, limit: int | None = None) -> Reply:
        """A catalog page with ``seq`` (the last change it reflects) and ``feed_port`` (where
        the server publishes changes; None when it does not): see `libsrv.LiveCatalog`."""
        return self.request(Action.SNAPSHOT, offset=offset or None, limit=limit)

    def stats(self) -> Reply:
        return self.request(Action.STATS)


def wait_until_serving(endpoint: str, *, timeout: float = 120.0,
                       on_wait: Callable[[int, int], None] | None = None) -> Reply:
    """Ask `endpoint` for `ping` until every worker it has serves (alive is not ready: a
    broker answers while workers still load a big catalog). `on_wait(serving, workers)` is
    called while some do not; a server that does not say (an older or another one) counts as
    ready. Returns the last ping's reply; raises TimeoutError after `timeout` seconds and
    ServerUnreachable when nothing answers."""
    deadline = time.monotonic() + timeout
    with LibraryClient(endpoint, timeout=min(5.0, timeout), retries=0) as lib:
        while True:
            reply = lib.ping()
            serving, workers = reply.raw.get("serving"), reply.raw.get("workers")
            if not isinstance(serving, int) or not isinstance(workers, int) or \
                    serving >= workers:
                return reply
            if on_wait is not None:
                on_wait(serving, workers)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{endpoint}: {serving} of {workers} workers serve after "
                                   f"{timeout:g} s")
            time.sleep(0.2)  # a poll with a deadline: the workers load on their own
