"""Every default a user can see, in one leaf module (it imports nothing): the modules that use
them, the CLIs' help and the docs read them from here, and `from libsrv import LibraryClient`
loads no storage engine to learn a port number."""

from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5555
DEFAULT_WORKERS = 2
DEFAULT_LOAN_DAYS = 7  # a loan by ISBN, as in the class's code
DEFAULT_TITLE_LOAN_DAYS = 14  # a loan by title, as in the class's code
DEFAULT_PAGE_LANG = "es"  # the forms page and widgets speak the class's language by default
TRANSPORT_NAMES = ("zmq", "grpc", "http")  # `serve --transport`; libsrv.transports has the others
DEFAULT_TRANSPORT = "zmq"
TRANSPORT_TITLES = {"zmq": "ZeroMQ", "grpc": "gRPC", "http": "HTTP"}  # as tables name them
ENGINE_NAMES = ("journal", "json")  # `libsrv.storage.ENGINES` maps them to their classes
DEFAULT_ENGINE = "journal"
DEFAULT_LOCK_TIMEOUT = 15.0  # above the broker's worker timeout: a stuck holder dies first
# A worker busy this long on one request is killed and replaced; a big catalog gets longer
# (writing its snapshot legitimately takes a while: docs/bench.md gives the time per million
# books), one more second per BOOKS_PER_TIMEOUT_SECOND books.
DEFAULT_WORKER_TIMEOUT = 10.0
BOOKS_PER_TIMEOUT_SECOND = 50_000
# Request ids remembered, across workers and restarts: the last DEDUP_WINDOW writes, and
# however many more came in the last DEDUP_SECONDS (a client's retries end well within that:
# LibraryClient gives up after three tries of 2.5 s). Each costs about 0.5 KB per process (its
# reply kept as JSON text): 20,000 are 10 MB; at 1,400 writes/s, 60 s are 84,000 (42 MB).
DEDUP_WINDOW = 20_000
DEDUP_SECONDS = 60.0
# The broker's data path: `compiled` (libsrv/data_path.c, built on first use) or `python`;
# `auto` takes the compiled one when this machine can build it. The variable overrides `auto`.
DATA_PATH_NAMES = ("auto", "compiled", "python")
DEFAULT_DATA_PATH = "auto"
DATA_PATH_VARIABLE = "LIBSRV_DATA_PATH"
DEFAULT_FEED_HWM = 10_000  # changes the feed queues per subscriber before dropping them


def worker_timeout_for(books: int) -> float:
    """The worker timeout the server uses for a catalog of `books` books."""
    return max(DEFAULT_WORKER_TIMEOUT, books / BOOKS_PER_TIMEOUT_SECOND)
