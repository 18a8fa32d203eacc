"""Someone else's server: its books from its catalog file, and its state asked in its own
protocol (a `Dialect`), one book at a time.

The kit's server lists its catalog and answers in the kit's protocol (`libsrv.LibraryClient`);
a student's server may do neither, so the bench reads the books and their states before the run
from the file the server serves (``--catalog``), and after the run asks the server for each book
the run touched and reads the file again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import zmq

from libsrv.catalog import Catalog, CatalogError
from libsrv.protocol import Action, Code
from libsrv.transports.callers import CallFailed, caller_for
from libsrv_bench.dialects import Dialect, Outcome
from libsrv_bench.history import TIMEOUT
from libsrv_bench.settings import transport_of

ASK_TIMEOUT = 5.0
ASK_TRIES = 3


def books_in_file(path: Path | str) -> list[dict[str, Any]]:
    """The books of a catalog file (the class's ``{"libros": [...]}`` or the kit's format);
    raises CatalogError naming the file when it cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise CatalogError(f"cannot read the catalog file {path}: {error.strerror}") from None
    return [dict(book) for book in Catalog.from_bytes(data, source=path).snapshot()]


def file_state(path: Path | str) -> tuple[dict[str, dict[str, Any]] | None, str | None]:
    """(each book's record by ISBN, None), or (None, why the file cannot be read): a file a
    server broke under concurrent writes is a finding, not a crash of the bench."""
    try:
        return {book["ISBN"]: book for book in books_in_file(path)}, None
    except CatalogError as error:
        return None, str(error)


class Asker:
    """One request at a time to `endpoint` in its dialect, each with a deadline: the REQ
    socket is kept while replies come, and replaced after a timeout (a REQ socket without its
    reply cannot send again), as the Lazy Pirate client does. A timeout is the outcome
    TIMEOUT."""

    def __init__(self, endpoint: str, dialect: Dialect, *, timeout: float = ASK_TIMEOUT) -> None:
        self.endpoint, self.dialect, self.timeout = endpoint, dialect, timeout
        self._ctx = zmq.Context()
        self._sock: zmq.Socket | None = None
        # over gRPC and HTTP (the kit's protocol only): a caller of that transport
        self._caller = None if transport_of(endpoint) == "zmq" else caller_for(endpoint,
                                                                               timeout)

    def raw(self, frame: bytes, action: Action, fields: dict[str, str]) -> Outcome:
        """Send `frame` as it is (also bytes no dialect would make) and read the reply."""
        if self._caller is not None:
            try:
                request = json.loads(frame)
                request.pop("action", None)
                reply = self._caller.call(action, **request)
            except CallFailed:
                return Outcome(TIMEOUT)
            return self.dialect.reply(action, fields, json.dumps(reply).encode())
        if self._sock is None:
            self._sock = self._ctx.socket(zmq.REQ)
            self._sock.linger = 0
            self._sock.connect(self.endpoint)
        self._sock.send(frame)
        if not self._sock.poll(int(self.timeout * 1000), zmq.POLLIN):
            self._sock.close()
            self._sock = None
            return Outcome(TIMEOUT)
        return self.dialect.reply(action, fields, self._sock.recv())

    def ask(self, action: Action, **fields: str) -> Outcome:
        return self.raw(self.dialect.request(action, fields, None), action, fields)

    def close(self) -> None:
        if self._caller is not None:
            self._caller.close()
        self._ctx.destroy(linger=0)


def ask_states(endpoint: str, dialect: Dialect, isbns: list[str], *,
               timeout: float = ASK_TIMEOUT) -> dict[str, dict[str, Any]]:
    """What the server shows now for each book, asked in its dialect (a book it does not show
    is left out); a query that gets no reply is asked again, up to ASK_TRIES times."""
    asker = Asker(endpoint, dialect, timeout=timeout)
    served: dict[str, dict[str, Any]] = {}
    try:
        for isbn in isbns:
            for _ in range(ASK_TRIES):
                outcome = asker.ask(Action.QUERY_ISBN, isbn=isbn)
                if outcome.code != TIMEOUT:
                    break
            if outcome.code == Code.OK and outcome.book is not None and \
                    outcome.book["ISBN"] == isbn:
                served[isbn] = outcome.book
    finally:
        asker.close()
    return served
