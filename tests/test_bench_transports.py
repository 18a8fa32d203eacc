"""The bench over gRPC and HTTP: the same load generator, records and verifier as over ZeroMQ
(`libsrv_bench.wires`), against a server bench starts (`transport=`) or one it is pointed at
(`grpc://`, `http://`); lost updates are caught whatever carried them."""

from __future__ import annotations

from pathlib import Path

import pytest

from libsrv.process import ServerProcess
from libsrv_bench.runner import run_experiment
from libsrv_bench.settings import RunConfig

pytestmark = pytest.mark.fast

COMMON = dict(workers=2, books=50, clients=6, requests=600, warmup=0.2, workload="hot-spot",
              hot=2)


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_a_run_over_the_transport_is_answered_and_clean(tmp_path: Path, transport: str) -> None:
    outcome = run_experiment(RunConfig(transport=transport, **COMMON), tmp_path,
                             progress=False)
    summary = outcome.summary
    assert summary["requests"] == 600 and summary["timeouts"] == 0 and summary["errors"] == 0
    assert summary["violations"] == 0 and summary["verdict_ok"]
    assert summary["config"]["transport"] == transport and f"tr{transport}" in summary["name"]
    writes = outcome.samples[outcome.samples["action"].isin(["loan_isbn", "return_isbn"])]
    assert set(writes["code"]) <= {"OK", "UNAVAILABLE", "NOT_LOANED"} and len(writes) > 100


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


def test_a_server_given_by_its_http_endpoint_is_loaded_and_verified(
        tmp_path: Path, catalog_file: Path) -> None:
    with ServerProcess(catalog_file, workers=1, options={"transport": "http"}) as server:
        assert server.endpoint.startswith("http://")
        outcome = run_experiment(RunConfig(endpoint=server.endpoint, clients=4, requests=300,
                                           warmup=0, workload="hot-spot", hot=2),
                                 tmp_path, progress=False)
    assert outcome.summary["requests"] == 300 and outcome.summary["timeouts"] == 0
    assert outcome.summary["violations"] == 0


def test_the_class_gateway_in_front_of_the_server_is_loaded_and_verified(
        tmp_path: Path) -> None:
    outcome = run_experiment(RunConfig(gateway=True, **COMMON), tmp_path, progress=False)
    summary = outcome.summary
    assert summary["requests"] == 600 and summary["timeouts"] == 0 and summary["errors"] == 0
    assert summary["violations"] == 0 and summary["endpoint"].startswith("tcp://")
    assert summary["gateway"]["cpu_us_per_request"] > 0


def test_what_cannot_go_over_grpc_or_http_is_refused_up_front() -> None:
    for bad in (dict(transport="grpc", echo="broker"), dict(transport="http", dialect="class"),
                dict(transport="http", faults=("partition@1+1",)),
                dict(endpoint="grpc://127.0.0.1:1", proxy=True),
                dict(endpoint="http://127.0.0.1:1", transport="grpc"),
                dict(gateway=True, transport="grpc"), dict(gateway=True, dialect="class"),
                dict(transport="rmi")):
        with pytest.raises(ValueError):
            RunConfig(**bad)
    RunConfig(transport="grpc", faults=("kill-worker@1",))  # faults on processes are fine
