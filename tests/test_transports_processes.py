"""The gRPC and HTTP servers' processes: client processes fighting over the same books get one
loan per book across the server's processes, a killed worker is replaced, and SIGTERM stops
everything with the catalog file current."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psutil
import pytest

from libsrv.process import ServerProcess
from libsrv.protocol import Action
from libsrv.transports.callers import CallFailed, caller_for
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

FIGHTERS = 4


def books_of(db: Path) -> list[dict]:
    return json.loads(db.read_text(encoding="utf-8"))["libros"]


def fight(endpoint: str, name: str, isbns: list[str]) -> list[str]:
    """Try to loan every book, in an order of one's own; the ISBNs this fighter got."""
    order = list(isbns)
    random.Random(name).shuffle(order)
    caller = caller_for(endpoint, timeout=20)
    try:
        return [isbn for isbn in order
                if caller.call(Action.LOAN_ISBN, isbn=isbn, borrower=name)["code"] == "OK"]
    finally:
        caller.close()


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_processes_fighting_over_every_book_get_one_loan_each(
        catalog_file: Path, transport: str, workers: int) -> None:
    isbns = [book["ISBN"] for book in books_of(catalog_file)]
    server = ServerProcess(catalog_file, workers=workers, options={"transport": transport})
    with server, ProcessPoolExecutor(FIGHTERS,
                                     mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {f"fighter-{n}": pool.submit(fight, server.endpoint, f"fighter-{n}", isbns)
                   for n in range(FIGHTERS)}
        won = {name: future.result(timeout=120) for name, future in futures.items()}
    winners = [isbn for got in won.values() for isbn in got]
    assert sorted(winners) == sorted(isbns)  # each book lent once: none lost, none twice
    on_file = {book["ISBN"]: book["prestatario"] for book in books_of(catalog_file)}
    assert on_file == {isbn: name for name, got in won.items() for isbn in got}


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_a_killed_worker_is_replaced_and_the_server_serves_on(catalog_file: Path,
                                                              transport: str) -> None:
    with ServerProcess(catalog_file, workers=2, options={"transport": transport}) as server:
        caller = caller_for(server.endpoint)
        try:
            pids = caller.call(Action.STATS)["stats"]["worker_pids"]
            os.kill(pids[0], signal.SIGKILL)

            def replaced() -> dict | None:
                try:
                    stats = caller.call(Action.STATS)["stats"]
                except CallFailed:  # a connection the dying worker held, or accepted as it died
                    return None
                return stats if stats["worker_restarts"] == 1 and stats["serving"] == 2 \
                    else None

            stats = wait_until(replaced, 30, "the killed worker's replacement")
            assert pids[0] not in stats["worker_pids"] and pids[1] in stats["worker_pids"]
            replies = [caller.call(Action.PING)["code"] for _ in range(20)]
        finally:
            caller.close()
    assert replies == ["OK"] * 20


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sigterm_stops_every_process_with_the_catalog_current(catalog_file: Path,
                                                              transport: str) -> None:
    isbn = books_of(catalog_file)[0]["ISBN"]
    server = ServerProcess(catalog_file, workers=2, options={"transport": transport})
    server.start()
    try:
        family = psutil.Process(server.pid).children(recursive=True)
        caller = caller_for(server.endpoint)
        try:
            assert caller.call(Action.LOAN_ISBN, isbn=isbn, borrower="Ana")["code"] == "OK"
        finally:
            caller.close()
        os.kill(server.pid, signal.SIGTERM)
        code = server.wait(30)
        _, alive = psutil.wait_procs(family, timeout=10)  # before stop() kills the group
    finally:
        server.stop()
    assert code == 0, server.output
    assert len(family) >= 2 and not alive, alive
    assert books_of(catalog_file)[0]["prestatario"] == "Ana"  # flushed from the journal
