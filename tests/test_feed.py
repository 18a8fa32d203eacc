"""The live feed (PUB-SUB, the Clone pattern) on real sockets, processes and files: every change
published once, in journal order, with no gap that a subscriber does not detect."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
import zmq

from libsrv.catalog import AVAILABLE, Catalog
from libsrv.live import Change, FeedUnavailable, LiveCatalog, parse_change
from libsrv.process import ServerProcess
from tests.helpers import ChildOutput, client_for_endpoint, free_port, wait_until
from tests.workload import acknowledged_writes

pytestmark = pytest.mark.fast

BOOKS = 12


def isbns_of(db: Path, count: int = BOOKS) -> list[str]:
    return [book["ISBN"] for book in Catalog.from_bytes(db.read_bytes())][:count]


def file_state(db: Path) -> dict[str, dict]:
    return {book["ISBN"]: book for book in Catalog.from_bytes(db.read_bytes())}


class Subscriber:
    """A raw SUB socket that records every message (a second, independent observer)."""

    def __init__(self, ctx: zmq.Context, endpoint: str) -> None:
        self.sock = ctx.socket(zmq.SUB)
        self.sock.linger = 0
        self.sock.rcvhwm = 0  # keep everything: this observer must not lose messages
        self.sock.subscribe(b"")
        self.sock.connect(endpoint)
        self.changes: list[Change] = []
        self.beats: list[int] = []

    def receive(self, timeout_ms: int = 200) -> None:
        while self.sock.poll(timeout_ms):
            message = parse_change(self.sock.recv_multipart())
            if isinstance(message, int):
                self.beats.append(message)
            elif message is not None:
                self.changes.append(message)
            timeout_ms = 0

    def until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        def done() -> bool:
            self.receive()
            return predicate()

        wait_until(done, timeout=timeout, message="the feed")


def run_writers(endpoint: str, isbns: list[str], writers: int, ops: int
                ) -> tuple[list[str], int]:
    """`writers` client processes at once; the ids of every acknowledged write, and how many
    writes got no reply."""
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    procs = [spawn.Process(target=acknowledged_writes,
                           args=(endpoint, isbns, ops, seed, f"w{seed}", results))
             for seed in range(writers)]
    for proc in procs:
        proc.start()
    collected = [results.get(timeout=100) for _ in procs]
    for proc in procs:
        proc.join(30)
    return [rid for _, acked, _ in collected for rid in acked], \
        sum(lost for _, _, lost in collected)


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def test_every_change_once_in_order_with_several_workers_and_writers(
        catalog_file: Path, start_server: Callable[..., ServerProcess],
        ctx: zmq.Context) -> None:
    server = start_server(catalog_file, workers=3)
    assert server.feed_endpoint
    feed = Subscriber(ctx, server.feed_endpoint)
    feed.until(lambda: bool(feed.beats))  # subscribed: the first heartbeat came through
    start = feed.beats[-1]
    acked, lost = run_writers(server.endpoint, isbns_of(catalog_file), writers=4, ops=150)
    assert lost == 0
    with client_for_endpoint(server.endpoint) as lib:
        last = lib.snapshot(limit=1).raw["seq"]
    feed.until(lambda: bool(feed.changes) and feed.changes[-1].seq >= last)
    numbers = [change.seq for change in feed.changes]
    assert numbers == list(range(start + 1, last + 1))  # no gap, no repeat, in order
    assert sorted(change.id for change in feed.changes) == sorted(acked)  # each ack once
    state = {change.isbn: change.book for change in feed.changes}
    assert server.stop() == 0
    on_file = file_state(catalog_file)
    for isbn, book in state.items():
        assert on_file[isbn] == book


def test_a_change_made_once_the_copy_is_ready_arrives_as_a_change(
        catalog_file: Path, start_server: Callable[..., ServerProcess]) -> None:
    """Ready means subscribed: a change made the moment the copy says it is ready comes as a
    change, not folded into a later snapshot (``libsrv watch`` once missed the two it waited
    for, about one run in twenty, and waited for ever)."""
    server = start_server(catalog_file, workers=1)
    isbn = isbns_of(catalog_file)[0]
    with client_for_endpoint(server.endpoint) as lib:
        for turn in range(3):
            seen: list[Change] = []
            with LiveCatalog(server.endpoint, on_change=seen.append) as live:
                assert (lib.loan_isbn(isbn, "Ana") if turn % 2 == 0
                        else lib.return_isbn(isbn)).success
                wait_until(partial(_change_or_snapshot, seen, live), timeout=20,
                           message="the change, or a snapshot instead")
                assert [c.isbn for c in seen] == [isbn] and live.resyncs == 1, live.describe()


def _change_or_snapshot(seen: list[Change], live: LiveCatalog) -> bool:
    return bool(seen) or live.resyncs > 1


def test_a_subscriber_joining_mid_load_converges_to_the_file(
        catalog_file: Path, start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(catalog_file, workers=2)
    done: list[tuple[list[str], int]] = []
    load = threading.Thread(target=lambda: done.append(
        run_writers(server.endpoint, isbns_of(catalog_file), writers=3, ops=300)))
    load.start()
    try:
        with client_for_endpoint(server.endpoint) as lib:
            wait_until(lambda: lib.snapshot(limit=1).raw["seq"] > 50, timeout=60,
                       message="the load to be under way")
        live = LiveCatalog(server.endpoint)
    finally:
        load.join(180)
    with live:
        with client_for_endpoint(server.endpoint) as lib:
            last = lib.snapshot(limit=1).raw["seq"]
        assert live.wait_for(last, timeout=30), live.describe()
        copy = {book["ISBN"]: book for book in live.books()}
    assert server.stop() == 0
    assert copy == file_state(catalog_file)


def test_a_slow_subscriber_with_a_tiny_high_water_mark_detects_its_gap_and_resyncs(
        catalog_file: Path, start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(catalog_file, workers=2, options={"feed_hwm": 5})
    release = threading.Event()

    def slow(change: Change) -> None:
        release.wait(60)  # stuck: the server's queue for us fills and drops changes

    live = LiveCatalog(server.endpoint, on_change=slow, receive_hwm=5)
    with live:
        run_writers(server.endpoint, isbns_of(catalog_file), writers=2, ops=2500)
        release.set()
        with client_for_endpoint(server.endpoint) as lib:
            last = lib.snapshot(limit=1).raw["seq"]
        assert live.wait_for(last, timeout=60), live.describe()
        assert live.gaps >= 1 and live.resyncs >= 2, live.describe()
        copy = {book["ISBN"]: book for book in live.books()}
    assert server.stop() == 0
    assert copy == file_state(catalog_file)


def test_no_pub_publishes_nothing(catalog_file: Path) -> None:
    port = free_port()
    with ServerProcess(catalog_file, workers=1, port=port,
                       options={"publish": False}) as server:
        assert server.feed_endpoint is None
        with client_for_endpoint(server.endpoint) as lib:
            reply = lib.snapshot(limit=1)
            assert reply.success and reply.raw["feed_port"] is None
            assert lib.loan_isbn(isbns_of(catalog_file)[0], "Ana").success
        with pytest.raises(ConnectionRefusedError), socket.create_connection(
                ("127.0.0.1", port + 1), timeout=5):
            pass
        with pytest.raises(FeedUnavailable):
            LiveCatalog(server.endpoint)


def test_the_json_engine_publishes_nothing_and_says_why(catalog_file: Path) -> None:
    with ServerProcess(catalog_file, workers=0, storage="json", quiet=False) as server:
        assert server.feed_endpoint is None
        assert "needs the journal storage" in server.output


def test_watch_shows_changes_made_from_another_client(
        catalog_file: Path, start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(catalog_file, workers=2)
    isbn = isbns_of(catalog_file)[0]
    watcher = subprocess.Popen([sys.executable, "-m", "libsrv", "watch", "--endpoint",
                                server.endpoint, "--isbn", isbn, "--count", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = ChildOutput(watcher)
        lines.wait_for("^watching", timeout=60)
        with client_for_endpoint(server.endpoint) as lib:
            assert lib.loan_isbn(isbns_of(catalog_file)[1], "Other").success  # filtered out
            assert lib.loan_isbn(isbn, "Ana").success
            assert lib.return_isbn(isbn).success
        watcher.wait(60)
        output = lines.wait_closed()
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait(10)
    assert watcher.returncode == 0, output
    shown = [line for line in output.splitlines() if line.startswith("#")]
    assert len(shown) == 2 and all(isbn in line for line in shown)
    assert "lent to Ana" in shown[0] and "available" in shown[1]
    assert "Other" not in output


def test_numbers_survive_compaction_and_restart(catalog_file: Path) -> None:
    """The numbering is the journal's: it goes on across compactions and restarts."""
    from datetime import date

    from libsrv.library import Policy, plan_write
    from libsrv.protocol import Action, Request
    from libsrv.storage.journal import JournalStorage

    isbn = isbns_of(catalog_file)[0]
    numbers = []
    for life in range(3):  # three lives of the catalog, each compacting several times
        storage = JournalStorage(catalog_file, compact_min=1)
        for n in range(7):
            action = Action.LOAN_ISBN if (life * 7 + n) % 2 == 0 else Action.RETURN_ISBN
            request = Request(action=action, isbn=isbn, borrower="Ana", id=f"t{life}-{n}")
            reply = storage.write(request, lambda catalog, request=request: plan_write(
                request, catalog, Policy(), date.today()))
            assert reply["code"] == "OK"
            numbers.append(storage.seq)
        storage.flush()
        storage.close()
    assert numbers == list(range(1, 22))
    header = json.loads(Path(f"{catalog_file}.journal").read_text().splitlines()[0])
    assert header["seq"] == 21  # the last generation's header carries the count on


def test_a_taken_feed_port_is_a_clear_error(catalog_file: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "libsrv", "serve", "--port", "0",
                                 "--workers", "1", "--db", str(catalog_file), "--pub-port",
                                 str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "live feed cannot start" in result.stderr and "--no-pub" in result.stderr


def _adjacent_ports() -> tuple[socket.socket, int]:
    """A free port P whose neighbour P + 1 is held by a listening socket (returned)."""
    for _ in range(50):
        port = free_port()
        holder = socket.socket()
        try:
            holder.bind(("127.0.0.1", port + 1))
        except OSError:
            holder.close()
            continue
        holder.listen()
        return holder, port
    pytest.fail("no free port with a free neighbour")


def test_a_taken_default_feed_port_moves_the_feed_and_says_where(catalog_file: Path) -> None:
    holder, port = _adjacent_ports()
    with holder, ServerProcess(catalog_file, workers=1, port=port) as server:
        assert server.endpoint.endswith(f":{port}")
        feed_port = int(server.feed_endpoint.rsplit(":", 1)[1])
        assert feed_port != port + 1
        with client_for_endpoint(server.endpoint) as lib:
            assert lib.snapshot().raw["feed_port"] == feed_port
        with LiveCatalog(server.endpoint, timeout=5) as live:
            isbn = live.books()[0]["ISBN"]
            with client_for_endpoint(server.endpoint) as lib:
                assert lib.loan_isbn(isbn, "Ana").success
            wait_until(lambda: live.get(isbn)["prestatario"] == "Ana", timeout=10,
                       message="the loan through the moved feed")


def test_with_both_ports_taken_the_request_port_is_named(catalog_file: Path) -> None:
    holder, port = _adjacent_ports()
    with holder, socket.socket() as request_holder:
        request_holder.bind(("127.0.0.1", port))
        request_holder.listen()
        result = subprocess.run([sys.executable, "-m", "libsrv", "serve", "--port", str(port),
                                 "--workers", "1", "--db", str(catalog_file)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"request port {port} is taken" in result.stderr, result.stderr


def _feed_pid(server: ServerProcess) -> int:
    """The pid of the server's feed process (bench's own lookup), once it listens."""
    from libsrv_bench.runner import feed_pid

    return wait_until(lambda: feed_pid(server), timeout=10,  # type: ignore[return-value]
                      message="the feed process")


def test_a_killed_feed_is_started_again_and_subscribers_catch_up(catalog_file: Path) -> None:
    with ServerProcess(catalog_file, workers=1) as server, \
            LiveCatalog(server.endpoint, timeout=5) as live:
        first = _feed_pid(server)
        os.kill(first, signal.SIGKILL)
        isbn = live.books()[0]["ISBN"]
        with client_for_endpoint(server.endpoint) as lib:
            assert lib.loan_isbn(isbn, "Ana").success  # while the feed is down, or after
        wait_until(lambda: live.get(isbn)["prestatario"] == "Ana", timeout=20,
                   message="the loan in the subscriber's copy")
        assert _feed_pid(server) != first  # a new feed, on the same port
        with client_for_endpoint(server.endpoint) as lib:
            assert lib.return_isbn(isbn).success
        wait_until(lambda: live.get(isbn)["estado"] == AVAILABLE, timeout=20,
                   message="a change published by the new feed")
    assert "the live feed (PID" in server.output and "starting it again" in server.output


def test_a_subscriber_notices_a_silent_feed_and_keeps_its_copy_current(
        catalog_file: Path) -> None:
    with ServerProcess(catalog_file, workers=1) as server, \
            LiveCatalog(server.endpoint, timeout=5) as live:
        feed = _feed_pid(server)
        os.kill(feed, signal.SIGSTOP)  # alive, so not restarted, and silent
        try:
            isbn = live.books()[0]["ISBN"]
            with client_for_endpoint(server.endpoint) as lib:
                assert lib.loan_isbn(isbn, "Ana").success
            wait_until(lambda: live.silent, timeout=15, message="the silence to be noticed")
            wait_until(lambda: live.get(isbn)["prestatario"] == "Ana", timeout=15,
                       message="the loan, from a snapshot")
            assert live.silences == 1 and live.error is None
        finally:
            os.kill(feed, signal.SIGCONT)
        wait_until(lambda: not live.silent, timeout=15, message="the feed heard again")
