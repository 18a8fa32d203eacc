"""The server as a library call: `serve(config)` does everything ``python -m libsrv serve``
does (the CLI only turns flags into a `ServerConfig`, sets up logging, and prints).

It raises the open-file limit, creates the default catalog file from the shipped one when it
is missing, sweeps temporary files a crashed writer left, opens the catalog
(logging its warnings), chooses the worker timeout from the catalog's size when the config does
not set one, and runs the single server (``workers=0``) or the broker and its workers until
`stop` is set.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import replace

import zmq

from libsrv.broker import worker_main
from libsrv.broker_compiled import run_broker
from libsrv.config import LOOPBACK_HOSTS, ConfigError, ServerConfig
from libsrv.defaults import worker_timeout_for
from libsrv.feed import FeedError, SupervisedFeed
from libsrv.server import StopFlag, raise_open_file_limit, run_single
from libsrv.shipped import ensure_default
from libsrv.storage import open_storage, prepare_files
from libsrv.storage.journal import JournalStorage

log = logging.getLogger("libsrv")

UNSAFE_BANNER = """
!!! --unsafe-no-lock: the catalog FileLock is OFF. Concurrent writes WILL be lost or doubled.
!!! This is a teaching switch for watching a race happen; never use it for real data.
"""
READY = "libsrv serving on {endpoint} ({shape}, {storage} storage, {books} books, catalog {db})"
FEED = "; changes published on {feed}"
NO_FEED_ENGINE = ("no live feed: publishing changes needs the journal storage (the json engine "
                  "keeps no order of changes)")


SHAPES = {  # what a ready line says the server is, by transport
    "zmq": ("single REP", "{n} worker(s) behind a broker"),
    "grpc": ("gRPC, one process", "gRPC, {n} process(es) on one port"),
    "http": ("HTTP, one process", "HTTP, {n} process(es) on one port"),
}


def ready_line(endpoint: str, config: ServerConfig, books: int, feed: str | None = None) -> str:
    """The line that says a server is up; `libsrv.process.ServerProcess` waits for it."""
    single, several = SHAPES[config.transport]
    shape = several.format(n=config.workers) if config.workers else single
    line = READY.format(endpoint=endpoint, shape=shape, storage=config.storage, books=books,
                        db=config.db)
    return line + (FEED.format(feed=feed) if feed else "")


def ensure_port_free(config: ServerConfig) -> None:
    """Raise zmq.ZMQError (EADDRINUSE) when the request port is taken: said before the feed,
    which starts first, can complain about its own port."""
    if config.port == 0:
        return
    host = "0.0.0.0" if config.host in ("*", "0.0.0.0") else config.host
    try:
        infos = socket.getaddrinfo(host, config.port, type=socket.SOCK_STREAM)
    except OSError:
        return  # zmq's bind will say what is wrong with the host
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as zmq binds
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise zmq.ZMQError(errno.EADDRINUSE, f"the request port {config.port} is "
                                   "taken") from None


def start_feed(config: ServerConfig) -> SupervisedFeed:
    """The live feed on its port. Its default port (the request port + 1) may be taken (by
    another server on the port below, say): the feed is an extra, so it goes to a free port
    then, and the ready line and `snapshot` say where. An explicit `pub_port` that is taken
    stays an error (FeedError). The feed is restarted when it dies (`SupervisedFeed`)."""
    try:
        return SupervisedFeed(config.db, config.pub_bind_endpoint, curve=config.curve,
                              hwm=config.feed_hwm)
    except FeedError as error:
        if config.pub_port is not None or not error.port_taken:
            raise
    feed = SupervisedFeed(config.db, replace(config, pub_port=0).pub_bind_endpoint,
                          curve=config.curve, hwm=config.feed_hwm)
    log.warning("the live feed's usual port (%s) is taken; it publishes on %s instead",
                config.pub_bind_endpoint.rsplit(":", 1)[1], feed.endpoint)
    return feed


def serve(config: ServerConfig, *, stop: StopFlag | None = None,
          on_ready: Callable[[str], None] | None = None,
          worker_entry: Callable[..., None] = worker_main) -> bool:
    """Serve `config` until `stop` is set (default: SIGINT or SIGTERM, when called from the
    main thread). `on_ready` gets the ready line once clients can connect (default: logged).
    Returns whether the catalog file is up to date at the end (else its last flush failed and
    the journal beside it holds what it lacks). Raises StorageError, CatalogError,
    libsrv.feed.FeedError (the feed's port is taken) or zmq.ZMQError when it cannot start."""
    before, after = raise_open_file_limit()
    if after > before:
        log.info("open-file limit raised from %d to %d (one per client connection)", before,
                 after)
    if not config.locking:
        log.warning(UNSAFE_BANNER)
    created = ensure_default(config.db)
    if created is not None:
        log.info("no catalog at %s yet: copied the shipped catalog there", created)
    for leftover in prepare_files(config.db, lock_timeout=config.lock_timeout):
        log.warning("removed a temporary file left by a crashed writer: %s", leftover)
    storage = open_storage(config.storage, config.db, lock_timeout=config.lock_timeout,
                           locking=config.locking, fsync=config.fsync,
                           remember_seconds=config.remember_seconds)
    for warning in getattr(storage, "warnings", []):
        log.warning("catalog: %s", warning)
    books = len(storage.read())
    if config.worker_timeout is None:
        # writing a snapshot of a big catalog legitimately takes a while (docs/bench.md gives
        # the time per million books); a worker doing it must not look stuck
        config = replace(config, worker_timeout=worker_timeout_for(books))
    if config.host not in LOOPBACK_HOSTS:
        log.warning("listening on %s: other machines on the network can reach this server",
                    config.host)
    feed = None
    if config.publish and config.storage != JournalStorage.name:
        log.info(NO_FEED_ENGINE)
        config = replace(config, publish=False)
    elif config.publish:
        ensure_port_free(config)  # a taken request port is the error to report, not the feed's
        feed = start_feed(config)
        config = replace(config, pub_port=feed.port)  # the workers tell clients where it is
    if stop is None:
        stop = StopFlag()
        if threading.current_thread() is threading.main_thread():
            stop.install()

    def announce(endpoint: str) -> None:
        line = ready_line(endpoint, config, books, feed.endpoint if feed else None)
        (on_ready or log.info)(line)

    try:
        if config.transport != "zmq":
            storage.close()
            return _run_transport(config, stop, announce)
        if config.workers == 0:
            return run_single(config, storage, stop, announce)
        storage.close()
        return run_broker(config, stop, announce, worker_entry=worker_entry)
    finally:
        if feed is not None:
            feed.close()


def _run_transport(config: ServerConfig, stop: StopFlag,
                   announce: Callable[[str], None]) -> bool:
    """gRPC or HTTP: imported only when asked for (they need the `transports` extra)."""
    try:
        from libsrv.transports.pool import run_pool

        if config.transport == "grpc":
            from libsrv.transports.grpc_server import serve_grpc as serve_one
        else:
            from libsrv.transports.http_server import serve_http as serve_one
    except ImportError as error:
        raise ConfigError(f"--transport {config.transport} needs the transports extra "
                          f"(pip install \".[transports]\"): {error}") from None
    return run_pool(config, stop, announce, serve_one, config.transport)
