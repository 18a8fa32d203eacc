"""Small servers that speak the kit's protocol on a real REP socket, some of them wrong on
purpose, so that tests can show bench catches what it claims to catch."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import zmq

from libsrv.catalog import AVAILABLE, LENT
from libsrv.generate import isbn_for
from libsrv.protocol import Action, Code, encode_reply, make_reply, parse_request

BUGS = ("correct", "lose-return", "stale-read", "refuse-available", "double-loan",
        "no-stats", "slow")


class FakeLibrary:
    """The library's rules on a few books, in one thread, with one bug switched on.

    - lose-return: every 3rd return that should succeed answers OK but leaves the book lent;
    - stale-read: a query answers with the book as it was before its last change;
    - refuse-available: every 3rd loan of an available book is refused as UNAVAILABLE;
    - double-loan: every 3rd loan of a lent book answers OK;
    - no-stats: `stats` answers INTERNAL;
    - slow: every request takes 2 ms (a server that cannot keep up with a high rate).
    """

    def __init__(self, bug: str, books: int = 2) -> None:
        if bug not in BUGS:
            raise ValueError(bug)
        self.bug = bug
        self.books = {isbn_for(i): self._book(isbn_for(i), i) for i in range(books)}
        self.before = dict(self.books)
        self.count = 0

    @staticmethod
    def _book(isbn: str, number: int) -> dict[str, Any]:
        return {"ISBN": isbn, "titulo": f"Libro {number}", "autores": ["Autora"],
                "estado": AVAILABLE, "prestatario": None, "fecha_prestamo": None,
                "fecha_devolucion": None}

    def _change(self, isbn: str, book: dict[str, Any]) -> None:
        self.before[isbn] = self.books[isbn]
        self.books[isbn] = book

    def answer(self, frame: bytes) -> bytes:
        if self.bug == "slow":
            time.sleep(0.002)  # service time, not synchronisation
        request = parse_request([frame])
        self.count += 1
        third = self.count % 3 == 0
        if request.action == Action.CATALOG:
            books = list(self.books.values())[request.offset:request.offset + request.limit]
            return encode_reply(make_reply(Code.OK, "page", books=books, total=len(books)))
        if request.action == Action.STATS and self.bug == "no-stats":
            return encode_reply(make_reply(Code.INTERNAL, "broken"))
        if request.action in (Action.PING, Action.STATS):
            return encode_reply(make_reply(Code.OK, "pong", stats={}))
        isbn = request.isbn or ""
        book = self.books.get(isbn)
        if book is None:
            return encode_reply(make_reply(Code.NOT_FOUND, "no such book"))
        if request.action == Action.QUERY_ISBN:
            shown = self.before[isbn] if self.bug == "stale-read" else book
            return encode_reply(make_reply(Code.OK, "found", book=shown, found=True))
        if request.action == Action.LOAN_ISBN:
            lent = dict(book, estado=LENT, prestatario=request.borrower)
            if book["estado"] == AVAILABLE:
                if self.bug == "refuse-available" and third:
                    return encode_reply(make_reply(Code.UNAVAILABLE, "taken", book=book))
                self._change(isbn, lent)
                return encode_reply(make_reply(Code.OK, "lent", book=lent))
            if self.bug == "double-loan" and third:
                self._change(isbn, lent)
                return encode_reply(make_reply(Code.OK, "lent", book=lent))
            return encode_reply(make_reply(Code.UNAVAILABLE, "taken", book=book))
        if request.action == Action.RETURN_ISBN:
            if book["estado"] != LENT:
                return encode_reply(make_reply(Code.NOT_LOANED, "not lent", book=book))
            back = dict(book, estado=AVAILABLE, prestatario=None)
            if self.bug == "lose-return" and third:
                return encode_reply(make_reply(Code.OK, "returned", book=back))
            self._change(isbn, back)
            return encode_reply(make_reply(Code.OK, "returned", book=back))
        return encode_reply(make_reply(Code.BAD_REQUEST, "not served here"))


@contextmanager
def fake_server(bug: str = "correct", books: int = 2) -> Iterator[str]:
    """A FakeLibrary on a REP socket bound to a random loopback port; yields its endpoint.
    The serving thread stops, and its socket closes, when the block ends."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.linger = 0
    sock.bind("tcp://127.0.0.1:*")
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    library = FakeLibrary(bug, books)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if sock.poll(50):
                sock.send(library.answer(sock.recv()))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        stop.set()
        thread.join(5)
        sock.close()
        ctx.term()
