"""The broker's data path: credits route around a stuck worker, and ping says how many workers
serve while one loads. (Workers dying under a mixed load: tests/test_kills_under_load.py.)"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from libsrv.broker_core import WORKER_CREDITS
from libsrv.client import LibraryClient, ServerUnreachable, wait_until_serving
from libsrv.generate import isbn_for, write_catalog
from libsrv_bench.runner import RunConfig, run_experiment
from tests.helpers import client_for, wait_until

# every test here runs on both of the broker's data paths (compiled and Python)
pytestmark = [pytest.mark.fast, pytest.mark.usefixtures("each_data_path")]

MIX = "mix:query_isbn=40,loan_isbn=30,return_isbn=30"


def test_a_bench_run_records_which_data_path_served(tmp_path: Path,
                                                   each_data_path: str) -> None:
    """The server's `stats` say which data path serves, and a bench run records it."""
    outcome = run_experiment(RunConfig(workers=2, books=50, clients=4, duration=1, warmup=0,
                                       workload=MIX), tmp_path, progress=False)
    assert outcome.summary["data_path"] == each_data_path
    assert outcome.summary["clean"], outcome.summary["not_clean"]


def test_a_stopped_worker_holds_at_most_its_credits(start_server, tmp_path: Path) -> None:
    server = start_server(write_catalog(tmp_path / "credits.json", 20), workers=2,
                          args=["--worker-timeout", "60"])  # no rescue: only credits help
    with client_for(server) as lib:
        victim = lib.stats().raw["stats"]["worker_pids"][0]
    os.kill(victim, signal.SIGSTOP)
    unanswered = 0
    try:
        for n in range(40):
            with LibraryClient(server.endpoint, timeout=1.0, retries=0) as lib:
                try:
                    reply = lib.query_isbn(isbn_for(n % 20))
                except ServerUnreachable:
                    unanswered += 1
                    continue
                assert reply.success, reply.message
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGCONT)
    assert unanswered <= WORKER_CREDITS, unanswered
    assert unanswered >= 1  # the stopped worker did get (and hold) some


def test_ping_says_how_many_workers_serve_while_a_replacement_loads(
        start_server, tmp_path: Path) -> None:
    """Alive is not ready: while a replacement worker parses a big catalog, ping says one of
    two serve, and `wait_until_serving` waits for both."""
    server = start_server(write_catalog(tmp_path / "big.json", 60_000), workers=2)
    with client_for(server) as lib:
        pong = lib.ping().raw
        assert (pong["serving"], pong["workers"]) == (2, 2)
        victim = lib.stats().raw["stats"]["worker_pids"][0]
    os.kill(victim, signal.SIGKILL)
    with client_for(server) as lib:
        wait_until(lambda: lib.ping().raw["serving"] == 1, timeout=20,
                   message="ping to say one of two serve")
    waits: list[tuple[int, int]] = []
    reply = wait_until_serving(server.endpoint, timeout=60,
                               on_wait=lambda s, w: waits.append((s, w)))
    assert (reply.raw["serving"], reply.raw["workers"]) == (2, 2)
    assert waits and set(waits) == {(1, 2)}, waits
    with client_for(server) as lib:
        assert lib.stats().raw["stats"]["serving"] == 2
