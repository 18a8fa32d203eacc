"""The bench over gRPC and HTTP, at more length: a gRPC run, lost updates caught whatever
carried them, and the class's Flask gateway in front of the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from libsrv_bench.runner import run_experiment
from libsrv_bench.settings import RunConfig
from tests.test_bench_transports import COMMON, assert_a_clean_run

pytestmark = pytest.mark.slow


def test_a_run_over_grpc_is_answered_and_clean(tmp_path: Path) -> None:
    assert_a_clean_run(tmp_path, "grpc")


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_the_verifier_catches_lost_updates_over_the_transport(tmp_path: Path,
                                                              transport: str) -> None:
    for _ in range(3):  # races need the two workers to overlap: a starved machine may not
        unsafe = run_experiment(RunConfig(transport=transport, unsafe_no_lock=True,
                                          **{**COMMON, "requests": 1500, "hot": 1}),
                                tmp_path, progress=False)
        if unsafe.violations:
            break
    assert unsafe.violations > 0, unsafe.summary["codes"]


def test_the_class_gateway_in_front_of_the_server_is_loaded_and_verified(
        tmp_path: Path) -> None:
    outcome = run_experiment(RunConfig(gateway=True, **COMMON), tmp_path, progress=False)
    summary = outcome.summary
    assert summary["requests"] == 600 and summary["timeouts"] == 0 and summary["errors"] == 0
    assert summary["violations"] == 0 and summary["endpoint"].startswith("tcp://")
    assert summary["gateway"]["cpu_us_per_request"] > 0




@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_a_killed_worker_costs_retries_not_updates_over_the_transport(
        tmp_path: Path, transport: str) -> None:
    outcome = run_experiment(RunConfig(transport=transport, workers=2, books=50, clients=8,
                                       duration=3, warmup=0.2, workload="hot-spot", hot=3,
                                       retries=5, timeout=0.5, faults=("kill-worker@1",)),
                             tmp_path, progress=False)
    summary = outcome.summary
    (fault,) = summary["faults"]
    assert fault["pid"] and not fault["error"], fault
    assert summary["violations"] == 0 and summary["timeouts"] == 0, summary["codes"]


def test_an_open_loop_over_http_keeps_its_schedule(tmp_path: Path) -> None:
    outcome = run_experiment(RunConfig(transport="http", workers=2, books=50, clients=8,
                                       rate=400, duration=2, warmup=0.2, workload="hot-spot",
                                       hot=3), tmp_path, progress=False)
    summary = outcome.summary
    assert 0.8 * 400 * 2 <= summary["answered"] <= 1.2 * 400 * 2, summary["answered"]
    assert summary["violations"] == 0 and summary["timeouts"] == 0
