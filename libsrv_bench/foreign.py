"""Someone else's server: its books from its catalog file, and its state asked in its own
protocol (a `Dialect`), one book at a time.

The kit's server lists its catalog and answers in the kit's protocol (`libsrv.LibraryClient`);
a student's server may do neither, so the bench reads the books and their states before the run
from the file the server serves (``--catalog``), and after the run asks the server for each book
the run touched and reads the file again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import zmq

from libsrv.catalog import Catalog, CatalogError
from libsrv.protocol import Action, Code
from libsrv_bench.dialects import Dialect

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


def ask_states(endpoint: str, dialect: Dialect, isbns: list[str], *,
               timeout: float = ASK_TIMEOUT) -> dict[str, dict[str, Any]]:
    """What the server shows now for each book, asked in its dialect (a book it does not show
    is left out). A query that gets no reply is sent again on a fresh socket (Lazy Pirate), up
    to ASK_TRIES times."""
    ctx = zmq.Context()
    served: dict[str, dict[str, Any]] = {}
    sock: zmq.Socket | None = None
    try:
        for isbn in isbns:
            fields = {"isbn": isbn}
            request = dialect.request(Action.QUERY_ISBN, fields, None)
            for _ in range(ASK_TRIES):
                if sock is None:
                    sock = ctx.socket(zmq.REQ)
                    sock.linger = 0
                    sock.connect(endpoint)
                sock.send(request)
                if sock.poll(int(timeout * 1000), zmq.POLLIN):
                    outcome = dialect.reply(Action.QUERY_ISBN, fields, sock.recv())
                    if outcome.code == Code.OK and outcome.book is not None and \
                            outcome.book["ISBN"] == isbn:
                        served[isbn] = outcome.book
                    break
                sock.close()  # a REQ socket without its reply cannot send again
                sock = None
    finally:
        if sock is not None:
            sock.close()
        ctx.term()
    return served
