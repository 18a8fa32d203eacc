"""The bench over HTTP, quickly: the same load generator, records and verifier as over ZeroMQ
(`libsrv_bench.wires`), against a server bench starts (`transport=`) or one it is pointed at
(`http://`); what cannot go over gRPC or HTTP is refused. gRPC, lost updates over both and the
class's gateway: tests/test_bench_transports_more.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from libsrv.process import ServerProcess
from libsrv_bench.runner import run_experiment
from libsrv_bench.settings import RunConfig

pytestmark = pytest.mark.fast

COMMON = dict(workers=2, books=50, clients=6, requests=600, warmup=0.2, workload="hot-spot",
              hot=2)


def assert_a_clean_run(tmp_path: Path, transport: str) -> None:
    """A run over `transport` of a server bench starts: every request answered, verified."""
    outcome = run_experiment(RunConfig(transport=transport, **COMMON), tmp_path,
                             progress=False)
    summary = outcome.summary
    assert summary["requests"] == 600 and summary["timeouts"] == 0 and summary["errors"] == 0
    assert summary["violations"] == 0 and summary["verdict_ok"]
    assert summary["config"]["transport"] == transport and f"tr{transport}" in summary["name"]
    writes = outcome.samples[outcome.samples["action"].isin(["loan_isbn", "return_isbn"])]
    assert set(writes["code"]) <= {"OK", "UNAVAILABLE", "NOT_LOANED"} and len(writes) > 100


def test_a_run_over_http_is_answered_and_clean(tmp_path: Path) -> None:
    assert_a_clean_run(tmp_path, "http")  # gRPC's: tests/test_bench_transports_more.py


def test_a_server_given_by_its_http_endpoint_is_loaded_and_verified(
        tmp_path: Path, catalog_file: Path) -> None:
    with ServerProcess(catalog_file, workers=1, options={"transport": "http"}) as server:
        assert server.endpoint.startswith("http://")
        outcome = run_experiment(RunConfig(endpoint=server.endpoint, clients=4, requests=300,
                                           warmup=0, workload="hot-spot", hot=2),
                                 tmp_path, progress=False)
    assert outcome.summary["requests"] == 300 and outcome.summary["timeouts"] == 0
    assert outcome.summary["violations"] == 0


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
