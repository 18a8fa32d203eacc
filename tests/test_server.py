"""The server over real sockets, in both shapes and with both storage engines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import filelock
import pytest
import zmq

from libsrv.catalog import AVAILABLE, LENT, Catalog
from libsrv.process import ServerProcess
from libsrv.protocol import MAX_FRAME_BYTES, Code
from tests.helpers import (
    ENGINES,
    ROOT,
    SHAPES,
    ChildOutput,
    ZmqProxy,
    client_for,
    client_for_endpoint,
    raw_exchange,
)

pytestmark = pytest.mark.fast

QUIJOTE, SOMBRA, CRIMEN = "9788437604947", "9788497592208", "9780140449266"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("workers", SHAPES)
def test_every_action_and_reply_code(start_server, catalog_file: Path, workers: int,
                                     engine: str) -> None:
    server = start_server(catalog_file, workers=workers, storage=engine,
                          args=["--lock-timeout", "0.3"])
    with client_for(server) as lib:
        assert lib.ping().code == Code.OK
        q = lib.query_isbn("978-84-376-0494-7")
        assert (q.code, q.found, q.book["titulo"]) == (Code.OK, True, "Don Quijote de la Mancha")
        assert lib.query_isbn("9780000000002").code == Code.NOT_FOUND
        assert lib.query_isbn("97800000000").code == Code.BAD_REQUEST
        assert lib.query_title("sombra").books[0]["ISBN"] == SOMBRA
        loan = lib.loan_title("La Sombra del Viento", "Samuel")
        assert (loan.code, loan.book["estado"], loan.book["prestatario"]) == (Code.OK, LENT,
                                                                              "Samuel")
        taken = lib.loan_isbn(SOMBRA, "Guillermo")
        assert taken.code == Code.UNAVAILABLE and taken.book["prestatario"] == "Samuel"
        assert taken.book["fecha_devolucion"] in taken.message
        assert lib.loan_isbn(CRIMEN, "Guillermo").code == Code.OK
        assert lib.return_isbn(SOMBRA).code == Code.OK
        assert lib.return_isbn(SOMBRA).code == Code.NOT_LOANED
        page = lib.catalog(offset=0, limit=1000)
        assert page.raw["total"] == len(page.books) >= 33
        with filelock.FileLock(f"{catalog_file}.lock"):  # another process holds the lock
            stuck = lib.loan_isbn(QUIJOTE, "Ana")
            assert stuck.code == Code.INTERNAL and "lock" in stuck.message
            assert lib.query_isbn(QUIJOTE).book["estado"] == AVAILABLE
        assert lib.loan_isbn(QUIJOTE, "Ana").code == Code.OK
        stats = lib.stats().raw["stats"]
    assert stats["workers"] == workers and stats["storage"] == engine
    assert stats["by_action"]["loan_isbn"] == {"OK": 2, "UNAVAILABLE": 1, "INTERNAL": 1}
    assert stats["by_code"]["BAD_REQUEST"] == 1 and stats["by_code"]["NOT_LOANED"] == 1
    assert server.stop() == 0
    final = Catalog.from_bytes(catalog_file.read_bytes())
    assert final.get(QUIJOTE)["prestatario"] == "Ana"
    assert final.get(CRIMEN)["prestatario"] == "Guillermo"
    assert final.get(SOMBRA)["estado"] == AVAILABLE


GARBAGE: list[list[bytes]] = [
    [b""], [b"null"], [b"{"], [b"\xff\xff"], [b"[]"], [b'"text"'], [b"{}"],
    [b'{"action": 5}'], [b'{"action": "loan_isbn"}'], [b'{"action": "return_isbn", "isbn": {}}'],
    [b'{"action": "loan_isbn", "isbn": "9788437604947", "borrower": "\\ud83d"}'],
    [b'{"action": "loan_isbn", "isbn": "9788437604947", "borrower": "' + b"x" * 101 + b'"}'],
    [b'{"action": "catalog", "offset": 1' + b"0" * 4000 + b"}"],
    [b'{"action": "catalog", "limit": NaN}'],
    [b"[" * 40_000 + b"]" * 20_000],
    [b"{" * 60_000],
    [b'{"action": "ping"}', b'{"action": "ping"}'],
    [b'{"action": "ping"}', b""],
    [b"x" * (MAX_FRAME_BYTES + 10)],
]


@pytest.mark.parametrize("workers", SHAPES)
def test_it_answers_through_proxies_in_front_as_a_rep_socket_would(
        start_server, catalog_file: Path, ctx: zmq.Context, workers: int) -> None:
    """REQ -> zmq.proxy -> zmq.proxy -> server: each hop adds a routing frame, and the
    replies (refusals of bad input included) go back along them."""
    server = start_server(catalog_file, workers=workers)
    first = ZmqProxy(ctx, server.endpoint)
    second = ZmqProxy(ctx, first.endpoint)
    try:
        for endpoint in (first.endpoint, second.endpoint):
            with client_for_endpoint(endpoint) as client:
                isbn = client.catalog().books[0]["ISBN"]
                assert client.loan_isbn(isbn, "proxied").code == Code.OK
                assert client.return_isbn(isbn).code == Code.OK
            bad = json.loads(raw_exchange(ctx, endpoint, [b"{not json"]))
            assert bad["code"] == "BAD_REQUEST"
            assert json.loads(raw_exchange(ctx, endpoint, [b"{}", b"more"]))["code"] == \
                "BAD_REQUEST"
    finally:
        second.close()
        first.close()

@pytest.mark.parametrize("workers", SHAPES)
def test_bad_input_gets_bad_request_and_changes_nothing(shared_servers, ctx: zmq.Context,
                                                        workers: int) -> None:
    server, db = shared_servers(workers)
    with client_for(server) as lib:
        before = lib.catalog(limit=1000).books, lib.stats().raw["stats"]["by_code"]
    before_file = db.read_bytes()
    for frames in GARBAGE:
        reply = json.loads(raw_exchange(ctx, server.endpoint, frames))
        assert (reply["success"], reply["code"]) == (False, Code.BAD_REQUEST), frames[0][:60]
        assert reply["message"]
    reply = json.loads(raw_exchange(ctx, server.endpoint, [b'{"action": "fly", "id": "q9"}']))
    assert reply["id"] == "q9"
    # Not a REQ envelope at all: nothing can be answered, but nothing may break either.
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(server.endpoint)
    dealer.send(b'{"action": "ping"}')
    dealer.send_multipart([b"junk", b"more"])
    dealer.close()
    # A frame over the hard limit: ZeroMQ drops that connection before reading it all.
    huge = ctx.socket(zmq.REQ)
    huge.linger = 0
    huge.connect(server.endpoint)
    huge.send(b"x" * (4 * 1024 * 1024))
    assert not huge.poll(300, zmq.POLLIN)
    huge.close()
    with client_for(server) as lib:
        assert lib.ping().success
        after = lib.catalog(limit=1000).books, lib.stats().raw["stats"]["by_code"]
    assert {code: n - before[1][code] for code, n in after[1].items() if code != "OK"} == \
        {code: len(GARBAGE) + 1 if code == "BAD_REQUEST" else 0 for code in after[1]
         if code != "OK"}
    assert after[0] == before[0] and db.read_bytes() == before_file


@pytest.mark.parametrize("workers", SHAPES)
def test_sigterm_stops_workers_and_leaves_the_catalog_current(start_server, catalog_file: Path,
                                                              workers: int) -> None:
    server = start_server(catalog_file, workers=workers)
    with client_for(server) as lib:
        assert lib.loan_isbn(QUIJOTE, "Guillermo").success
        pids = lib.stats().raw["stats"]["worker_pids"]
    assert server.stop() == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    book = Catalog.from_bytes(catalog_file.read_bytes()).get(QUIJOTE)
    assert book["prestatario"] == "Guillermo"
    assert "libsrv stopped" in server.output


def test_sigint_stops_it_too(start_server, catalog_file: Path) -> None:
    server = start_server(catalog_file, workers=1)
    with client_for(server) as lib:
        assert lib.loan_isbn(CRIMEN, "Ana").success
    os.killpg(server.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    code = server.stop()
    assert code == 0, server.output
    assert Catalog.from_bytes(catalog_file.read_bytes()).get(CRIMEN)["prestatario"] == "Ana"


STOP_FLAG_CHILD = """
import sys, time
from libsrv.server import StopFlag
stop = StopFlag().install()
print("ready", flush=True)
turns, end = 0, time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    turns += stop.wait(0.0005)
print("alive", bool(stop), turns, flush=True)
"""


def test_the_stop_flag_survives_a_storm_of_sigint_and_sigterm() -> None:
    """A signal that lands inside another signal's handler must not deadlock the process
    (Ctrl-C then SIGTERM hung a server about once in fifteen stops when the handler took the
    lock of a threading.Event)."""
    blast = 2.0
    child = subprocess.Popen([sys.executable, "-c", STOP_FLAG_CHILD, str(blast + 1)],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        output = ChildOutput(child)
        output.wait_for("ready", timeout=30)
        sent, end = 0, time.monotonic() + blast
        while time.monotonic() < end and child.poll() is None:
            os.kill(child.pid, signal.SIGINT)
            os.kill(child.pid, signal.SIGTERM)
            sent += 2
        out = output.wait_closed(timeout=20)
    finally:
        child.kill()
        child.wait(10)
    assert out.split()[1:3] == ["alive", "True"], f"after {sent} signals: {out!r}"


WAKE_CHILD = """
import threading, zmq
from libsrv.server import StopFlag
stop = StopFlag().install()
poller = zmq.Poller()
stop.watch(poller)
for turn in ("signal", "set"):
    print("polling", turn, flush=True)
    if turn == "set":
        threading.Timer(0.1, stop.set).start()
    events = poller.poll(600_000)  # ten minutes: only the flag can end it in time
    print("woke" if stop.woke(events) and stop else "timed out", turn, flush=True)
    print("quiet" if not poller.poll(0) else "still readable", flush=True)
"""


def test_a_signal_or_set_wakes_a_poll_that_watches_the_stop_flag() -> None:
    child = subprocess.Popen([sys.executable, "-c", WAKE_CHILD], stdout=subprocess.PIPE,
                             text=True, cwd=ROOT)
    try:
        output = ChildOutput(child)
        output.wait_for("polling signal", timeout=30)
        os.kill(child.pid, signal.SIGTERM)
        out = output.wait_closed(timeout=30)  # a poll not woken would hold it for ten minutes
    finally:
        child.kill()
        child.wait(10)
    assert out.split("\n")[1:6] == ["woke signal", "quiet", "polling set", "woke set",
                                     "quiet"], out


def test_spanish_messages_and_loan_period_flags(start_server, catalog_file: Path) -> None:
    server = start_server(catalog_file, workers=0, args=["--lang", "es", "--loan-days", "14"])
    with client_for(server) as lib:
        reply = lib.loan_isbn(QUIJOTE, "Guillermo")
    assert reply.message.startswith("Préstamo exitoso")
    lent, due = reply.book["fecha_prestamo"], reply.book["fecha_devolucion"]
    from datetime import date
    assert (date.fromisoformat(due) - date.fromisoformat(lent)).days == 14


def test_the_server_reads_a_class_config_file_and_flags_win(tmp_path: Path,
                                                            catalog_file: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"server": {"host": "127.0.0.1", "port": 0, "workers": 0},
                                  "client": {"server_host": "127.0.0.1", "server_port": 1},
                                  "web": {"port": 5000}}))
    server = ServerProcess(catalog_file, workers=1, args=["--config", str(config)])
    with server:
        assert "1 worker(s)" in server.output  # --workers 1 beat the file's 0
        assert server.endpoint.startswith("tcp://127.0.0.1:")


def test_a_missing_catalog_is_a_one_line_error(tmp_path: Path) -> None:
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "libsrv", "serve", "--db",
                             str(tmp_path / "none.json"), "--port", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and "does not exist" in result.stderr


def test_a_bad_catalog_is_named_and_a_folder_leaves_no_lock_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"libros": [{"ISBN": "1"}]}')
    folder = tmp_path / "catalogs"
    folder.mkdir()
    for db, words in ((broken, "missing field"), (folder, "is not a file")):
        result = subprocess.run([sys.executable, "-m", "libsrv", "serve", "--port", "0",
                                 "--db", str(db)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        assert str(db) in result.stderr and words in result.stderr, result.stderr
    assert not (tmp_path / "catalogs.lock").exists() and not any(folder.iterdir())


# A program that prints the ready line, then a line when told on stdin, then its last words
# on SIGTERM (as the server's last line is printed on its way out).
_PRINTER = """
import os, signal, sys
def last_words(*_):
    os.write(1, b"last words\\n" * 12000 + b"the end\\n")
    os._exit(0)
signal.signal(signal.SIGTERM, last_words)
print("serving on tcp://127.0.0.1:1", flush=True)
sys.stdin.readline()
print("told", flush=True)
signal.pause()
"""


def test_output_can_be_waited_for_and_is_whole_after_stop() -> None:
    server = ServerProcess("unused", command=[sys.executable, "-c", _PRINTER]).start()
    try:
        with pytest.raises(TimeoutError, match="serving on"):
            server.wait_for_output("told", timeout=0.2)  # not yet: nothing asked for it
        server._proc.stdin.write("go\n")
        server._proc.stdin.flush()
        assert "told" in server.wait_for_output("told")
        assert server.stop() == 0
        # stop returned: every line of its last words has been read
        assert server.output.endswith("last words\n" * 12000 + "the end\n")
    finally:
        server.kill()
