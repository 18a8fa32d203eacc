"""bench across machines on ipyparallel: a local cluster of two engines in CI, one history
across them, a clock deliberately shifted, and an engine killed mid-run."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from libsrv.generate import isbn_for, write_catalog
from libsrv_bench.engines import end_cluster_processes, shift_clock
from libsrv_bench.runner import RunOutcome, run_experiment
from libsrv_bench.settings import RunConfig
from tests.helpers import client_for, wait_until

pytestmark = pytest.mark.slow

ipp = pytest.importorskip("ipyparallel")
SHIFT_NS = 5_000_000_000  # five seconds: far more than any operation lasts


def local_cluster(profile: Path) -> Iterator[tuple[Any, Any, str]]:
    """A local cluster of two engines: (the cluster, a client, its connection file). Whatever
    it leaves running at the end (an engine a test killed leaves its children) is ended."""
    local = ipp.Cluster(n=2, profile_dir=str(profile), cluster_id="t", log_level=40)
    client = local.start_and_connect_sync()
    try:
        yield local, client, str(profile / "security" / "ipcontroller-t-client.json")
    finally:
        client.close()
        with contextlib.suppress(Exception):  # an engine a test killed is already gone
            local.stop_cluster_sync()
        end_cluster_processes(profile)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, str]]:
    """A cluster shared by the tests that leave its engines as they found them."""
    yield from local_cluster(tmp_path_factory.mktemp("ipp"))


@pytest.fixture
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, str]]:
    """A cluster for one test that stops or kills an engine (no other test sees the damage)."""
    yield from local_cluster(tmp_path_factory.mktemp("ipp-own"))


def fight(**settings: Any) -> RunConfig:
    return RunConfig(**{"clients": 12, "duration": 2.0, "warmup": 0.2, "workload": "hot-spot",
                        "hot": 2, "books": 40, "seed": 1, **settings})


def test_two_local_engines_make_one_run_and_one_history(tmp_path: Path) -> None:
    outcome = run_experiment(fight(engines=2), tmp_path, progress=False)
    summary = outcome.summary
    assert summary["engines"] == 2 and outcome.violations == 0, summary.get("engine_runs")
    runs = summary["engine_runs"]
    assert [r["status"] for r in runs] == ["ok", "ok"]
    assert sum(r["requests"] for r in runs) == summary["requests"] > 100
    assert {r["clients"] for r in runs} == {6}
    for run in runs:  # one machine: the true offset is 0, and must lie within the estimate
        assert abs(run["offset_ms"]) <= run["uncertainty_ms"] + 0.001, run
    engines = set(outcome.samples["engine"])
    assert engines == {r["engine"] for r in runs}  # every row says which engine sent it


def test_a_shifted_engine_clock_gives_no_false_violation_and_unsafe_is_still_caught(
        cluster: tuple[Any, Any, str], start_server, tmp_path: Path) -> None:
    _, client, connection = cluster
    client[client.ids[1]].apply_sync(shift_clock, SHIFT_NS)
    try:
        db = write_catalog(tmp_path / "safe.json", 40)
        safe_server = start_server(db, workers=2)
        safe = run_experiment(fight(cluster=connection, endpoint=safe_server.endpoint),
                              tmp_path, progress=False)
        offsets = [r["offset_ms"] for r in safe.summary["engine_runs"]]
        assert abs(offsets[1] - SHIFT_NS / 1e6) < 50, offsets  # the shift was measured
        assert safe.violations == 0, safe.verdict["details"][:3]
        unsafe_server = start_server(write_catalog(tmp_path / "unsafe.json", 40), workers=2,
                                     options={"locking": False})
        unsafe = run_experiment(fight(cluster=connection, endpoint=unsafe_server.endpoint),
                                tmp_path, progress=False)
        assert unsafe.violations > 0, unsafe.summary["codes"]
    finally:
        client[client.ids[1]].apply_sync(shift_clock, 0)


def test_without_the_offset_the_shift_would_be_a_false_violation(
        cluster: tuple[Any, Any, str], start_server, tmp_path: Path) -> None:
    """The check above is not vacuous: the same records, with the shifted engine's times
    taken at face value, make the verifier report violations that did not happen."""
    from libsrv_bench.engines import run_on_engines
    from libsrv_bench.load import LoadSpec
    from libsrv_bench.verifier import ops_from_records, verify
    from libsrv_bench.workloads import KeySpace, workload_named

    _, client, _ = cluster
    shifted = client.ids[1]
    server = start_server(write_catalog(tmp_path / "c.json", 40), workers=2)
    spec = LoadSpec(server.endpoint, 12, workload_named("hot-spot", 2), KeySpace(40, True),
                    duration=2.0, warmup=0.2)
    client[shifted].apply_sync(shift_clock, SHIFT_NS)
    try:
        result, runs, widened = run_on_engines(spec, client, list(client.ids), wait_seconds=60)
    finally:
        client[shifted].apply_sync(shift_clock, 0)
    initial = {isbn_for(n): False for n in range(2)}
    assert verify(ops_from_records(widened), initial, {}).ok  # mapped: a clean history
    offset = next(r.offset_ns for r in runs if r.engine == shifted)
    face_value = [r if r.engine != shifted else r._replace(
        t_send=r.t_send + offset, t_recv=None if r.t_recv is None else r.t_recv + offset)
        for r in result.records]
    assert not verify(ops_from_records(face_value), initial, {}).ok


def disrupted_run(cluster: tuple[Any, Any, str], start_server, tmp_path: Path,
                  disrupt: Callable[[int], None], **settings: Any) -> RunOutcome:
    """A run over the cluster's two engines; once the load is under way, `disrupt(pid)` is
    done to the second engine's process. Fails if the run does not end within two minutes."""
    _, client, connection = cluster
    victim = client.ids[1]  # bench uses the first two: this is one of them
    pid = client[victim].apply_sync(os.getpid)
    server = start_server(write_catalog(tmp_path / "c.json", 40), workers=2)
    done: list[RunOutcome] = []
    run = threading.Thread(target=lambda: done.append(run_experiment(
        fight(cluster=connection, engines=2, endpoint=server.endpoint, **settings), tmp_path,
        progress=False)))
    run.start()
    with client_for(server) as lib:
        wait_until(lambda: lib.stats().raw["stats"]["requests"] > 100, timeout=60,
                   message="the load to be under way")
    family = psutil.Process(pid).children(recursive=True)  # its load processes
    disrupt(pid)
    run.join(120)
    for process in family:  # a killed engine's children are nobody's to end but ours
        with contextlib.suppress(psutil.Error):
            process.kill()
    assert not run.is_alive() and done, "the run hung after an engine was disrupted"
    summary = done[0].summary
    runs = {r["engine"]: r["status"] for r in summary["engine_runs"]}
    assert runs[victim] == "missing" and list(runs.values()).count("ok") == 1, runs
    assert summary["verdict_skipped"] and "missing" in summary["verdict_skipped"]
    return done[0]


def test_an_engine_that_stops_answering_mid_run_is_named_at_the_deadline(
        own_cluster: tuple[Any, Any, str], start_server, tmp_path: Path) -> None:
    """SIGSTOP: the engine neither answers nor closes its connections, as when its machine
    drops off the network. The run still ends, at its deadline, and names it."""
    stopped: list[int] = []

    def stop(pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)

    try:
        disrupted_run(own_cluster, start_server, tmp_path, stop, duration=1.0, timeout=2.0)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


def test_an_engine_killed_mid_run_ends_the_run_cleanly_and_is_named(
        own_cluster: tuple[Any, Any, str], start_server, tmp_path: Path) -> None:
    started = time.monotonic()
    disrupted_run(own_cluster, start_server, tmp_path, lambda pid: os.kill(pid, signal.SIGKILL),
                  duration=4.0)
    assert time.monotonic() - started < 90
