"""Workers and whole servers killed again and again under load: the broker re-sends without
applying twice, and the live feed leaves no gap it does not detect (the slow tier: each runs
for several seconds)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from libsrv.live import LiveCatalog
from libsrv.process import ServerProcess
from libsrv_bench.runner import RunConfig, run_experiment
from tests.helpers import client_for_endpoint, free_port, wait_until
from tests.test_broker import MIX
from tests.test_feed import file_state, isbns_of, run_writers

pytestmark = pytest.mark.slow


@pytest.mark.usefixtures("each_data_path")  # compiled and Python
def test_writes_without_an_id_are_applied_once_when_their_worker_dies(tmp_path: Path) -> None:
    """The class's client sends no id. The broker re-sends a dead worker's requests, and a
    write the dead worker had applied but not answered must not be applied again (a loan made
    would be answered UNAVAILABLE, which the verifier calls a wrong refusal)."""
    outcome = run_experiment(RunConfig(workers=2, books=50, clients=12, duration=8, warmup=0,
                                       workload=MIX, hot=2, no_ids=True, timeout=5,
                                       kill_worker_every=0.5), tmp_path, progress=False)
    summary = outcome.summary
    assert summary["workers_killed"] >= 4
    assert summary["codes"].get("OK", 0) > 200
    assert outcome.violations == 0, outcome.verdict["details"][:3]


def test_worker_kills_and_a_server_restart_under_load_leave_no_undetected_gap(
        catalog_file: Path) -> None:
    port, pub = free_port(), free_port()
    options = {"pub_port": pub}
    server = ServerProcess(catalog_file, workers=2, port=port, options=options).start()
    endpoint = server.endpoint
    try:
        live = LiveCatalog(endpoint, timeout=5, retries=10)
        results: list[tuple[list[str], int]] = []
        load = threading.Thread(target=lambda: results.append(
            run_writers(endpoint, isbns_of(catalog_file), writers=2, ops=400)))
        load.start()
        with client_for_endpoint(endpoint) as lib:
            wait_until(lambda: lib.snapshot(limit=1).raw["seq"] > 40, timeout=60,
                       message="the load to be under way")
            worker = lib.stats().raw["stats"]["worker_pids"][0]
        os.kill(worker, signal.SIGKILL)
        with client_for_endpoint(endpoint, timeout=10, retries=3) as lib:
            seen = lib.snapshot(limit=1).raw["seq"]
            wait_until(lambda: lib.snapshot(limit=1).raw["seq"] > seen + 40, timeout=60,
                       message="the load to go on after the kill")
        server.kill()  # the whole server, mid-load: its last changes may never be published
        server = ServerProcess(catalog_file, workers=2, port=port, options=options).start()
        load.join(240)
        assert results and not load.is_alive()
        with client_for_endpoint(endpoint) as lib:
            last = lib.snapshot(limit=1).raw["seq"]
        with live:
            assert live.wait_for(last, timeout=60), live.describe()
            copy = {book["ISBN"]: book for book in live.books()}
        assert server.stop() == 0
        assert copy == file_state(catalog_file)
    finally:
        server.kill()


@pytest.mark.usefixtures("each_data_path")  # compiled and Python
def test_no_anomaly_while_workers_die_under_a_mixed_load(tmp_path: Path) -> None:
    outcome = run_experiment(RunConfig(workers=2, books=50, clients=12, duration=5, warmup=0,
                                       workload=MIX, hot=2, retries=5, timeout=2,
                                       kill_worker_every=1.0), tmp_path, progress=False)
    summary = outcome.summary
    assert summary["workers_killed"] >= 2
    assert summary["codes"].get("OK", 0) > 200
    assert outcome.violations == 0, outcome.verdict["details"][:3]
    assert summary["timeouts"] == 0
