"""The fault schedule (libsrv_bench.faults): reading `--fault`, the recovery figure read off a
timeline, and a real run with faults against a real server that must stay clean."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from libsrv.generate import write_catalog
from libsrv_bench.faults import Fault, FaultError, parse_fault, parse_schedule, recovery
from libsrv_bench.runner import RunConfig, RunError, run_experiment
from libsrv_bench.settings import run_flags
from tests.helpers import CLASS_DB

pytestmark = pytest.mark.fast


@pytest.mark.parametrize(("text", "fault"), [
    ("kill-worker@3", Fault("kill-worker", 3.0)),
    ("stop-worker@5.5+1", Fault("stop-worker", 5.5, 1.0)),
    (" kill-worker@0 ", Fault("kill-worker", 0.0))])
def test_a_fault_is_read_as_written(text: str, fault: Fault) -> None:
    assert parse_fault(text) == fault
    assert str(parse_fault(str(fault))) == str(fault)


@pytest.mark.parametrize(("text", "says"), [
    ("kill-worker", "KIND@START"), ("explode@3", "unknown fault 'explode'"),
    ("stop-worker@3", "needs a duration"), ("kill-worker@3+2", "happens at once"),
    ("kill-worker@-1", "KIND@START")])
def test_a_fault_that_cannot_be_read_says_why(text: str, says: str) -> None:
    with pytest.raises(FaultError, match=says):
        parse_fault(text)


def test_a_schedule_is_ordered_by_time() -> None:
    assert [f.at for f in parse_schedule(["kill-worker@5", "stop-worker@1+1"])] == [1, 5]


def _timeline(rates: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"t_s": [i / 10 for i in range(len(rates))], "rate_per_s": rates})


def test_recovery_is_when_throughput_is_back_near_its_level_before() -> None:
    rates = [1000.0] * 20 + [0.0] * 5 + [500.0] * 3 + [950.0] * 10  # fault at 2.0 s
    assert recovery(_timeline(rates), Fault("kill-worker", 2.0)) == pytest.approx(0.9)
    never = [1000.0] * 20 + [100.0] * 20
    assert recovery(_timeline(never), Fault("kill-worker", 2.0)) is None
    assert recovery(_timeline(rates), Fault("kill-worker", 0.0)) is None  # no "before"


def test_faults_need_a_server_bench_starts(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="--fault"):
        run_experiment(RunConfig(workers=0, faults=("kill-worker@1",)), tmp_path,
                       progress=False)


def test_a_run_with_faults_stays_clean_and_says_what_each_cost(tmp_path: Path) -> None:
    config = RunConfig(workers=2, books=100, clients=6, duration=2.2, warmup=0, timeout=1,
                       retries=3,
                       faults=("kill-worker@0.7", "stop-worker@1.4+0.4", "kill-feed@1.0"))
    assert run_flags(config).count("--fault") == 3  # the command repeats the schedule
    outcome = run_experiment(config, tmp_path, progress=False)
    faults = outcome.summary["faults"]
    assert [f["fault"] for f in faults] == ["kill-worker@0.7", "kill-feed@1",
                                            "stop-worker@1.4+0.4"], faults
    assert all(f["pid"] and not f["error"] for f in faults), [
        (f["fault"], f["pid"], f["error"]) for f in faults]
    assert 0.6 <= faults[0]["at_s"] <= 1.3 and 1.3 <= faults[2]["at_s"] <= 2.0, faults
    assert outcome.violations == 0 and outcome.summary["clean"], outcome.summary["not_clean"]
    timeline = pd.read_csv(outcome.folder / "timeline.csv")
    assert timeline["answered"].sum() == outcome.summary["requests"]


NETWORK_SCHEDULE = ("partition@0.6+0.3", "delay@1.1+0.4:20ms~5ms", "loss@1.6+0.4:10%",
                    "duplicate@2.1+0.4:30%", "reorder@2.1+0.4:30%")


@pytest.mark.slow  # seconds of load: tests/test_fault_proxy.py has each kind in the default tier
def test_a_run_through_network_faults_stays_clean_and_the_proxy_says_what_it_did(
        tmp_path: Path) -> None:
    config = RunConfig(workers=2, books=50, clients=6, duration=2.8, warmup=0, timeout=0.5,
                       retries=6, workload="hot-spot", hot=3, faults=NETWORK_SCHEDULE)
    outcome = run_experiment(config, tmp_path, progress=False)
    summary = outcome.summary
    assert [f["kind"] for f in summary["faults"]] == [
        "partition", "delay", "loss", "duplicate", "reorder"]
    assert all(not f["error"] for f in summary["faults"]), summary["faults"]
    proxy = summary["proxy"]
    assert proxy["lost_requests"] > 0 and proxy["duplicated_requests"] > 0
    assert summary["retried"] > 0  # the partition and the losses cost retries...
    assert outcome.violations == 0 and summary["clean"], summary["not_clean"]  # ...not updates


@pytest.mark.slow  # seconds of load: the default tier has the run above
def test_duplicated_requests_without_ids_are_applied_twice_and_caught(tmp_path: Path) -> None:
    """A duplicate of a return that arrives after someone else's loan undoes that loan: the
    server cannot tell a duplicate from a new request without an id, and the verifier sees
    the lost update. With ids (the run above) the server applies each request once."""
    config = RunConfig(workers=2, books=20, clients=6, duration=2.0, warmup=0, timeout=2,
                       workload="hot-spot", hot=2, no_ids=True,
                       faults=("duplicate@0+2:50%", "reorder@0+2:50%"))
    outcome = run_experiment(config, tmp_path, progress=False)
    assert outcome.summary["proxy"]["duplicated_requests"] > 0
    assert outcome.violations > 0
    assert not outcome.summary["clean"]


@pytest.mark.slow  # seconds of load: the default tier has the run above
def test_network_faults_work_against_a_server_bench_did_not_start(start_server,
                                                                  tmp_path: Path) -> None:
    server = start_server(write_catalog(tmp_path / "c.json", 30), workers=0)
    config = RunConfig(endpoint=server.endpoint, clients=4, duration=1.5, warmup=0,
                       timeout=0.5, retries=4, workload="hot-spot", hot=3,
                       faults=("partition@0.5+0.3",))
    outcome = run_experiment(config, tmp_path / "runs", progress=False)
    assert not outcome.summary["faults"][0]["error"], outcome.summary["faults"]
    assert outcome.summary["proxy"].get("lost_requests", 0) + \
        outcome.summary["proxy"].get("lost_replies", 0) > 0, outcome.summary["proxy"]
    assert outcome.violations == 0 and outcome.summary["clean"], outcome.summary["not_clean"]


@pytest.mark.slow  # seconds of load: the default tier has the run above
def test_the_whole_server_killed_restarted_and_paused_loses_no_acknowledged_write(
        tmp_path: Path) -> None:
    """kill-server SIGKILLs every process of the server and starts it again on its port and
    file; stop-server pauses them all. Retrying clients go on, and the verifier's check of the
    final state (asked of the restarted server, then read from its file) finds every
    acknowledged write."""
    config = RunConfig(workers=2, books=50, clients=4, duration=4.0, warmup=0, timeout=0.5,
                       retries=20, workload="hot-spot", hot=3,
                       faults=("kill-server@0.8", "stop-server@2.8+0.4"))
    outcome = run_experiment(config, tmp_path, progress=False)
    faults = outcome.summary["faults"]
    assert [f["kind"] for f in faults] == ["kill-server", "stop-server"]
    assert all(f["pid"] and not f["error"] for f in faults), [
        (f["fault"], f["pid"], f["error"]) for f in faults]
    assert faults[0]["retried"] > 0
    assert 0.7 <= faults[0]["at_s"] <= 1.5
    after = outcome.samples[outcome.samples["send_ms"] > faults[0]["at_s"] * 1000]
    assert (after["code"] == "OK").any()  # first sent after the kill: the new server served it
    assert outcome.violations == 0 and outcome.summary["clean"], outcome.summary["not_clean"]


def test_a_server_cmd_gets_only_the_faults_on_its_whole_process_group(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="kill-server and stop-server"):
        run_experiment(RunConfig(endpoint="tcp://127.0.0.1:9", server_cmd="true",
                                 faults=("kill-worker@1",)), tmp_path, progress=False)
    with pytest.raises(ValueError, match="--server-cmd starts the server at --endpoint"):
        RunConfig(server_cmd="python servidor.py")


def test_a_server_cmd_that_exits_says_so_and_leaves_nothing(tmp_path: Path) -> None:
    # what it wrote to its error output is said: a student's traceback, say
    with pytest.raises(RunError, match=r"exited with code 3 at start: .*no module named zmq$"):
        run_experiment(RunConfig(endpoint="tcp://127.0.0.1:9", dialect="class",
                                 catalog=str(CLASS_DB),
                                 server_cmd=f"{sys.executable} -c 'import sys; "
                                            "print(\"line\\n\" * 20000, file=sys.stderr); "
                                            "print(\"no module named zmq\", file=sys.stderr); "
                                            "sys.exit(3)'"),
                       tmp_path, progress=False)
