"""bench must not overstate: it catches wrong servers, reports what was achieved, repeats its
runs exactly, and tells when its own load generator is the limit."""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import random
import shlex
import subprocess
import sys
import time
from dataclasses import fields, replace
from datetime import date
from pathlib import Path

import pytest

from libsrv.generate import write_catalog
from libsrv.library import Policy, plan_write
from libsrv.protocol import Action, Request
from libsrv.storage.files import StorageError
from libsrv.storage.journal import JournalStorage
from libsrv_bench.cli import summary_warnings
from libsrv_bench.load import START_DELAY_NS, LoadSpec, run_load
from libsrv_bench.results import load_figures
from libsrv_bench.runner import RunError, run_experiment, server_pids
from libsrv_bench.settings import (
    NAME_LIMIT,
    SETTINGS,
    RunConfig,
    add_flags,
    config_from_args,
    run_flags,
)
from libsrv_bench.workloads import KeySpace, workload_named
from tests.fake_servers import fake_server

pytestmark = pytest.mark.fast

MIX = "mix:query_isbn=40,loan_isbn=30,return_isbn=30"


def against(endpoint: str, out: Path, **overrides: object) -> RunConfig:
    config = RunConfig(endpoint=endpoint, clients=4, requests=600, workload=MIX, hot=2,
                       warmup=0, timeout=5)
    return replace(config, **overrides)  # type: ignore[arg-type]


# ---------------------------------------------------------------- wrong servers are caught


@pytest.mark.parametrize(("bug", "expected"), [
    ("lose-return", {"wrong-refusal", "final-state", "double-return", "stale-read"}),
    ("stale-read", {"stale-read"}),
    ("refuse-available", {"wrong-refusal"}),
    ("double-loan", {"double-loan"}),
])
def test_each_deliberately_wrong_server_is_caught(bug: str, expected: set[str],
                                                  tmp_path: Path) -> None:
    with fake_server(bug) as endpoint:
        outcome = run_experiment(against(endpoint, tmp_path), tmp_path, progress=False)
    found = {d["kind"] for d in outcome.verdict["details"]}
    assert outcome.violations > 0 and found & expected, (bug, found)


def test_a_correct_server_is_not_blamed(tmp_path: Path) -> None:
    with fake_server("correct") as endpoint:
        outcome = run_experiment(against(endpoint, tmp_path, requests=1200), tmp_path,
                                 progress=False)
    assert outcome.summary["requests"] == 1200
    assert outcome.violations == 0, outcome.verdict["details"][:3]
    codes = outcome.summary["codes"]
    assert codes.get("UNAVAILABLE") and codes.get("NOT_LOANED")  # refusals were checked too


# ---------------------------------------------------------------- figures that cannot overstate


@pytest.mark.slow  # an open loop that falls behind: six seconds
def test_open_loop_reports_what_was_answered_not_what_was_offered(tmp_path: Path) -> None:
    # a server that needs 2 ms a request answers at most 500 a second; offer 1,500
    with fake_server("slow") as endpoint:
        outcome = run_experiment(RunConfig(endpoint=endpoint, clients=8, rate=1500,
                                           duration=1.5, warmup=0, workload="ping"),
                                 tmp_path, progress=False)
    summary = outcome.summary
    assert summary["offered_rate"] == 1500
    assert summary["throughput"] < 600, summary["throughput"]
    assert summary["fell_behind"] is True
    assert summary["overrun_seconds"] > 0.5 and summary["behind_schedule_ms"]["max"] > 500
    assert any("did not keep up" in w for w in summary_warnings(summary))


def test_open_loop_that_keeps_up_reports_its_rate(tmp_path: Path) -> None:
    with fake_server("correct") as endpoint:
        outcome = run_experiment(RunConfig(endpoint=endpoint, clients=4, rate=100,
                                           duration=2, warmup=0, workload="ping"),
                                 tmp_path, progress=False)
    summary = outcome.summary
    assert summary["throughput"] == pytest.approx(100, rel=0.2)
    assert summary["fell_behind"] is False
    assert not any("did not keep up" in w for w in summary_warnings(summary))


def test_load_processes_report_their_own_cost(tmp_path: Path) -> None:
    with fake_server("correct") as endpoint:
        outcome = run_experiment(RunConfig(endpoint=endpoint, clients=4, requests=400,
                                           warmup=0, workload="ping", processes=2),
                                 tmp_path, progress=False)
    load = outcome.summary["load"]
    assert load["processes"] == 2 and len(load["cpu_seconds"]) == 2
    assert all(c > 0 for c in load["cpu_seconds"])
    assert 0 < load["cpu_us_per_request"] < 1e6
    assert all(0 <= b <= 1.5 for b in load["busy"])
    saturated = dict(outcome.summary, load=dict(load, saturated=True, busy=[0.97, 0.4]))
    assert any("load process was saturated" in w for w in summary_warnings(saturated))


SLOW_MAIN = """
import sys, time
from libsrv_bench.runner import run_experiment
from libsrv_bench.settings import RunConfig

time.sleep(2.0)  # a main module slow to import, as a notebook's kernel or a console script is:
                 # every load process that multiprocessing spawns imports it again

if __name__ == "__main__":
    config = RunConfig(endpoint=sys.argv[1], clients=6, processes=6, workload="ping",
                       duration=0.5, warmup=0)
    outcome = run_experiment(config, sys.argv[2], progress=False)
    first_sends = outcome.samples.groupby("client")["send_ms"].min()
    print(outcome.summary["load"]["late_start_s"], len(first_sends), first_sends.max() / 1e3)
"""


@pytest.mark.slow  # six load processes, each 2 s to import
def test_every_load_process_starts_at_the_start_however_slow_it_was_to_spawn(
        tmp_path: Path) -> None:
    """t0 is picked once every load process is up, not after a fixed allowance: processes
    slow to start (here each imports a main module that takes 2 s) once missed the start of
    the run, and fewer clients than asked drove it."""
    script = tmp_path / "slow_main.py"
    script.write_text(SLOW_MAIN)
    with fake_server("correct") as endpoint:
        done = subprocess.run([sys.executable, str(script), endpoint, str(tmp_path)],
                              capture_output=True,
                              text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    late, clients, last_first_send = (float(v) for v in done.stdout.split())
    assert clients == 6
    assert late < START_DELAY_NS / 1e9
    assert last_first_send < START_DELAY_NS / 1e9


def test_a_start_the_processes_could_not_make_is_said() -> None:
    """A t0 given by the caller (engines) that has passed before the processes are up: each
    says how late it began, and the run's warnings say so."""
    with fake_server("correct") as endpoint:
        spec = LoadSpec(endpoint, 2, workload_named("ping"), KeySpace(10, True), duration=0.3,
                        warmup=0, processes=2)
        result = run_load(spec, t0=time.perf_counter_ns() - 2 * 10**9)
    assert all(late >= 2.0 for late in result.late_seconds)
    load = load_figures(result, len(result.records))
    assert any("began" in w for w in summary_warnings({"load": load}))
    on_time = load_figures(dataclasses.replace(result, late_seconds=[0.0, 0.001]),
                           len(result.records))
    assert not any("began" in w for w in summary_warnings({"load": on_time}))


# ---------------------------------------------------------------- runs that repeat


def test_the_same_run_twice_against_one_server_gives_two_clean_runs(start_server,
                                                                      tmp_path: Path) -> None:
    server = start_server(write_catalog(tmp_path / "shared.json", 20), workers=2)
    config = RunConfig(endpoint=server.endpoint, clients=4, requests=400,
                       workload="write-heavy", hot=3, warmup=0, seed=5)
    first = run_experiment(config, tmp_path, progress=False)
    second = run_experiment(config, tmp_path, progress=False)
    for outcome in (first, second):
        assert outcome.violations == 0, outcome.verdict["details"][:2]
        assert "BAD_REQUEST" not in outcome.summary["codes"], outcome.summary["codes"]
    assert first.summary["run_id"] != second.summary["run_id"]
    assert first.folder != second.folder and first.folder.exists()
    # the seed fixes the workload: both runs asked for the same books in the same order
    columns = ["client", "action", "isbn"]
    a = first.samples.sort_values(["client", "send_ms"])[columns].reset_index(drop=True)
    b = second.samples.sort_values(["client", "send_ms"])[columns].reset_index(drop=True)
    assert a.equals(b)


def random_config(rng: random.Random) -> RunConfig:
    return RunConfig(
        endpoint=rng.choice([None, "tcp://127.0.0.1:5599"]), workers=rng.choice([0, 1, 2, 4]),
        storage=rng.choice(["journal", "json"]), unsafe_no_lock=rng.random() < 0.5,
        fsync=rng.choice([None, True, False]), books=rng.choice([50, 10_000, 1_000_000]),
        clients=rng.randint(1, 500), processes=rng.randint(0, 4),
        duration=rng.choice([None, 2.5, 10.0]), requests=rng.choice([None, 100]),
        rate=rng.choice([None, 7500.0, 12.5]), think=rng.choice([0.0, 0.01]),
        warmup=rng.choice([0.0, 1.0, 0.5]), timeout=rng.choice([5.0, 1.5]),
        retries=rng.randint(0, 3), kill_worker_every=rng.choice([None, 2.0]),
        workload=rng.choice(["read-mostly", "hot-spot", MIX]), hot=rng.choice([None, 1, 50]),
        seed=rng.randint(1, 99), echo=rng.choice(["", "", "proxy", "broker"]),
        label=rng.choice(["", "my run"]))


def test_every_setting_has_one_flag_and_the_recorded_command_repeats_the_run() -> None:
    assert {s.field for s in SETTINGS} == {f.name for f in fields(RunConfig)}
    parser = argparse.ArgumentParser()
    add_flags(parser)
    rng = random.Random(3)
    for _ in range(500):
        config = random_config(rng)
        assert config_from_args(parser.parse_args(run_flags(config))) == config


def test_runs_with_different_settings_never_share_a_name() -> None:
    rng = random.Random(4)
    for _ in range(300):
        config = replace(random_config(rng), label="")
        for setting in SETTINGS:
            if setting.field == "label":
                continue
            other = replace(random_config(rng), label="")
            changed = replace(config, **{setting.field: getattr(other, setting.field)})
            if changed != config:
                assert changed.name() != config.name(), (setting.field, config.name())


def test_the_recorded_command_runs_again_to_the_same_configuration(tmp_path: Path) -> None:
    with fake_server("correct") as endpoint:
        first = run_experiment(RunConfig(endpoint=endpoint, clients=3, requests=90, hot=1,
                                         think=0.001, warmup=0, processes=1, timeout=4,
                                         workload=MIX, seed=9), tmp_path, progress=False)
        command = shlex.split(first.summary["command"])
        assert command[:4] == ["python", "-m", "libsrv_bench", "run"]
        again = subprocess.run([sys.executable, "-m", "libsrv_bench", *command[3:], "--out",
                                str(tmp_path), "--no-progress"], capture_output=True,
                               text=True, timeout=100)
    assert again.returncode == 0, again.stdout + again.stderr
    summaries = [json.loads(p.read_text()) for p in tmp_path.glob("*/summary.json")]
    assert len(summaries) == 2  # the second run did not replace the first
    assert summaries[0]["config"] == summaries[1]["config"]


# ---------------------------------------------------------------- the unsafe teaching run


def _unlocked_writer(db: str, rounds: int, errors: object) -> None:
    storage = JournalStorage(db, locking=False, compact_min=3)
    policy = Policy()
    failures = 0
    isbn = storage.read().page(0, 1)[0]["ISBN"]
    for n in range(rounds):
        action = Action.LOAN_ISBN if n % 2 == 0 else Action.RETURN_ISBN
        request = Request(action, isbn=isbn, borrower="x" if n % 2 == 0 else None,
                          id=f"{os.getpid()}-{n}")  # ids make generations differ in length
        try:
            storage.read()
            storage.write(request, lambda c, r=request: plan_write(r, c, policy, date.today()))
        except StorageError:
            failures += 1
    storage.close()
    errors.value += failures  # type: ignore[attr-defined]


def test_unlocked_writers_compacting_at_once_never_wedge(tmp_path: Path) -> None:
    """Two processes without the lock, compacting every few writes: each may lose the other's
    updates (that is the lesson), but neither may end up reading from the middle of a line."""
    db = write_catalog(tmp_path / "race.json", 5)
    JournalStorage(db).close()  # create the journal
    mp = multiprocessing.get_context("spawn")
    errors = mp.Value("i", 0)
    writers = [mp.Process(target=_unlocked_writer, args=(str(db), 600, errors))
               for _ in range(2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
    assert all(w.exitcode == 0 for w in writers)
    assert errors.value == 0


def test_an_error_reply_to_stats_is_a_clear_run_error(tmp_path: Path) -> None:
    class Ours:
        pid = 1

    with fake_server("no-stats") as endpoint, pytest.raises(RunError, match="no stats"):
        server_pids(endpoint, Ours())  # type: ignore[arg-type]


def test_a_run_name_stays_short_and_unique_however_long_its_settings() -> None:
    long_path = "/tmp/" + "carpeta-de-grupo/" * 20 + "DB.json"
    first = RunConfig(endpoint="tcp://127.0.0.1:5601", catalog=long_path).name()
    second = RunConfig(endpoint="tcp://127.0.0.1:5601", catalog=long_path + "x").name()
    assert len(first) <= NAME_LIMIT and len(second) <= NAME_LIMIT
    assert first != second


def test_a_clients_next_request_is_sent_after_its_last_reply(tmp_path: Path) -> None:
    """A closed-loop client's operations follow one another in the history: each is sent
    strictly after the previous one was answered, so the verifier never takes them as
    overlapping."""
    outcome = run_experiment(RunConfig(workers=0, clients=2, requests=400, books=50),
                             tmp_path, progress=False)
    frame = outcome.samples.sort_values(["client", "send_ms"])
    for _, ops in frame.groupby("client"):
        sent, answered = ops["send_ms"].to_numpy()[1:], ops["recv_ms"].to_numpy()[:-1]
        assert len(sent) > 100 and (sent > answered).all()
