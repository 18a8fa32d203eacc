"""Many client processes racing, SIGKILLs of the whole server and of single workers."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from libsrv.catalog import LENT, Catalog
from libsrv.client import LibraryClient
from libsrv.generate import isbn_for, write_catalog
from libsrv.protocol import Code
from tests.helpers import ENGINES, client_for, wait_until
from tests.workload import collect, expected_states, own_books, race

pytestmark = pytest.mark.fast

MP = multiprocessing.get_context("spawn")


@pytest.mark.parametrize("engine", ENGINES)
def test_racing_clients_never_lose_or_double_a_loan(start_server, tmp_path: Path,
                                                    engine: str) -> None:
    db = write_catalog(tmp_path / "race.json", 50)
    books = [isbn_for(n) for n in range(3)]
    server = start_server(db, workers=3, storage=engine)
    results = MP.Queue()
    clients = [MP.Process(target=race, args=(server.endpoint, books, 120, seed, f"c{seed}",
                                             results)) for seed in range(8)]
    for process in clients:
        process.start()
    histories = collect(clients, results)
    with client_for(server) as lib:
        served = {isbn: lib.query_isbn(isbn).book for isbn in books}
    assert server.stop() == 0
    on_disk = Catalog.from_bytes(db.read_bytes())
    for isbn in books:
        ops = [(name, op, code) for name, h in histories.items() for op, i, code in h
               if i == isbn]
        loans = [name for name, op, code in ops if op == "loan" and code == Code.OK]
        returns = sum(1 for _, op, code in ops if op == "return" and code == Code.OK)
        final = served[isbn]
        assert len(loans) - returns == (1 if final["estado"] == LENT else 0), isbn
        assert {code for _, _, code in ops} <= {Code.OK, Code.UNAVAILABLE, Code.NOT_LOANED}
        if final["estado"] == LENT:
            assert final["prestatario"] in loans
        assert on_disk.get(isbn) == final
        assert len(loans) > 5 and returns > 5  # the race really happened


@pytest.mark.parametrize("engine", ENGINES)
def test_sigkill_of_the_whole_server_loses_no_acknowledged_write(start_server, tmp_path: Path,
                                                                  engine: str) -> None:
    db = write_catalog(tmp_path / "crash.json", 40)
    server = start_server(db, workers=2, storage=engine)
    progress = MP.Value("i", 0)
    results = MP.Queue()
    clients = [MP.Process(target=own_books, args=(
        server.endpoint, [isbn_for(4 * c + k) for k in range(4)], 10_000, f"c{c}", 1.0, 0,
        progress, results)) for c in range(4)]
    for process in clients:
        process.start()
    wait_until(lambda: progress.value >= 300, message="writes under way")
    server.kill()  # SIGKILL to broker and workers at once, mid-write
    histories = collect(clients, results)
    Catalog.from_bytes(db.read_bytes())  # the file is whole and valid right after the kill
    restarted = start_server(db, workers=2, storage=engine)
    with client_for(restarted) as lib:
        for name, history in histories.items():
            assert history, name
            for isbn, allowed in expected_states(history).items():
                book = lib.query_isbn(isbn).book
                state = "lent" if book["estado"] == LENT else "available"
                assert state in allowed, (name, isbn, history[-3:])
                if state == "lent":
                    assert book["prestatario"] == name
    assert restarted.stop() == 0


@pytest.mark.usefixtures("each_data_path")  # compiled and Python
def test_killed_workers_are_replaced_and_retrying_clients_see_exactly_once(
        start_server, tmp_path: Path) -> None:
    db = write_catalog(tmp_path / "workers.json", 40)
    server = start_server(db, workers=2)
    progress = MP.Value("i", 0)
    results = MP.Queue()
    ops = 150
    clients = [MP.Process(target=own_books, args=(
        server.endpoint, [isbn_for(3 * c + k) for k in range(3)], ops, f"c{c}", 1.0, 10,
        progress, results)) for c in range(5)]
    for process in clients:
        process.start()
    killed: set[int] = set()

    def kill_a_live_worker(lib: LibraryClient) -> bool:
        """SIGKILL a worker not killed before (the stats may still list one killed a moment
        ago, or one killed as stuck meanwhile)."""
        pids = [p for p in lib.stats().raw["stats"]["worker_pids"] if p and p not in killed]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
                return True
        return False

    with client_for(server, timeout=5, retries=3) as lib:
        for target in (200, 600, 1000):
            wait_until(lambda t=target: progress.value >= t, message="progress")
            wait_until(lambda: kill_a_live_worker(lib), message="a live worker to kill")
        histories = collect(clients, results)
        stats = lib.stats().raw["stats"]
    assert stats["worker_restarts"] >= len(killed) == 3
    for name, history in histories.items():
        assert len(history) == ops * 3, name  # every request answered
        assert {code for _, _, code in history} == {Code.OK}, name  # each applied exactly once
    assert server.stop() == 0
