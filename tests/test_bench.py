"""bench: percentile maths, the verifier on hand-made histories, and real small runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from libsrv_bench.load import new_histogram
from libsrv_bench.report import write_report
from libsrv_bench.results import histogram_figures, read_histogram
from libsrv_bench.runner import RunConfig, run_experiment
from libsrv_bench.workloads import KeySpace, workload_named

pytestmark = pytest.mark.fast

MS = 1_000_000  # ns


# ---------------------------------------------------------------- percentiles


def test_percentiles_of_a_hand_made_distribution() -> None:
    hist = new_histogram()
    for value_us in range(1, 1001):  # 1 µs .. 1000 µs, once each
        hist.record_value(value_us * 1000)
    figures = histogram_figures(hist)
    assert figures["p50_ms"] == pytest.approx(0.500, rel=0.002)
    assert figures["p90_ms"] == pytest.approx(0.900, rel=0.002)
    assert figures["p99_ms"] == pytest.approx(0.990, rel=0.002)
    assert figures["p999_ms"] == pytest.approx(0.999, rel=0.002)
    assert figures["max_ms"] == pytest.approx(1.000, rel=0.002)


def test_histograms_from_several_processes_merge_exactly() -> None:
    fast, slow, merged = new_histogram(), new_histogram(), new_histogram()
    for _ in range(990):
        fast.record_value(100_000)  # 0.1 ms
    for _ in range(10):
        slow.record_value(50 * MS)
    for encoded in (fast.encode(), slow.encode()):
        merged.decode_and_add(encoded)
    figures = histogram_figures(merged)
    assert merged.get_total_count() == 1000
    assert figures["p50_ms"] == pytest.approx(0.1, rel=0.002)
    assert figures["p99_ms"] == pytest.approx(0.1, rel=0.002)  # the 990th value
    assert figures["p999_ms"] == pytest.approx(50, rel=0.002)


def test_sub_millisecond_latencies_keep_their_resolution() -> None:
    hist = new_histogram()
    for value_ns in (23_400, 23_600, 87_100):
        hist.record_value(value_ns)
    assert hist.get_value_at_percentile(50) == pytest.approx(23_600, rel=0.001)
    assert histogram_figures(hist)["max_ms"] == pytest.approx(0.0871, rel=0.001)


# ---------------------------------------------------------------- workloads


def test_workloads_are_repeatable_and_respect_the_hot_set() -> None:
    import random
    keys = KeySpace(count=1000, generated=True)
    hot = workload_named("hot-spot")
    first = [hot.next(random.Random(7), 3, n, keys) for n in range(50)]
    again = [hot.next(random.Random(7), 3, n, keys) for n in range(50)]
    assert first == again
    assert len({fields["isbn"] for _, fields in first}) <= 3
    with pytest.raises(ValueError, match="unknown workload"):
        workload_named("nope")
    mix = workload_named("mix:ping=1")
    assert mix.next(random.Random(1), 0, 0, keys)[0] == "ping"


# ---------------------------------------------------------------- real runs


def test_a_small_run_records_every_request(tmp_path: Path) -> None:
    outcome = run_experiment(RunConfig(workers=0, books=200, clients=4, requests=400,
                                       workload="write-heavy", warmup=0), tmp_path,
                             progress=False)
    samples, summary = outcome.samples, outcome.summary
    assert len(samples) == 400 == summary["requests"]
    assert set(samples["client"]) == {0, 1, 2, 3}
    answered = samples.dropna(subset=["recv_ms"])
    assert (answered["recv_ms"] >= answered["send_ms"]).all()
    assert (answered["latency_ms"] > 0).all() and (answered["latency_ms"] < 5000).all()
    for key in ("throughput", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "timeouts",
                "errors", "violations", "config", "machine"):
        assert key in summary
    assert summary["violations"] == 0 and summary["timeouts"] == 0
    assert summary["config"]["clients"] == 4
    saved = json.loads((outcome.folder / "summary.json").read_text())
    assert saved["requests"] == 400
    assert read_histogram(outcome.folder).get_total_count() == 400


def test_open_loop_counts_latency_from_the_intended_time(tmp_path: Path) -> None:
    outcome = run_experiment(RunConfig(workers=1, books=100, clients=4, duration=2,
                                       warmup=0.5, rate=200, workload="ping"), tmp_path,
                             progress=False)
    samples = outcome.samples.dropna(subset=["recv_ms"])
    per_client = samples[samples["client"] == 0].sort_values("intended_ms")
    gaps = per_client["intended_ms"].diff().dropna()
    assert gaps.round(3).eq(20.0).all()  # 4 clients at 200/s: every 20 ms each
    assert (samples["latency_ms"] >= samples["service_ms"] - 1e-6).all()
    assert outcome.summary["uncorrected"]["p50_ms"] <= outcome.summary["p50_ms"] + 1e-6


def test_the_verifier_catches_real_lost_updates_and_clears_the_safe_server(
        tmp_path: Path) -> None:
    common = dict(workers=2, books=50, clients=12, requests=1500, warmup=0.2,
                  workload="hot-spot", hot=1)
    for _ in range(3):  # races need the two workers to overlap: a starved machine may not
        unsafe = run_experiment(RunConfig(unsafe_no_lock=True, **common), tmp_path,
                                progress=False)
        if unsafe.violations:
            break
    safe = run_experiment(RunConfig(**common), tmp_path, progress=False)
    assert unsafe.violations > 0, unsafe.summary["codes"]
    assert {d["kind"] for d in unsafe.verdict["details"]} & {"double-loan", "double-return",
                                                             "final-state"}
    # without the lock the lesson is the lost updates, and nothing else
    assert unsafe.summary["errors"] == 0 and unsafe.summary["timeouts"] == 0, \
        unsafe.summary["codes"]
    assert safe.violations == 0
    report = write_report([tmp_path], tmp_path / "report")
    text = report.read_text()
    runs = 1 + sum(1 for p in tmp_path.iterdir() if p.name.startswith("hot-spot-journal-unsafe"))
    path = safe.summary["data_path"]
    assert f"The broker's data path (docs/broker.md): {'Python' if path == 'python' else path} " \
           f"in {runs} run(s)" in text
    assert "## The lost-update experiment" in text and "journal, NO LOCK" in text
    assert "What the verifier found" in text and "double-" in text
    assert (tmp_path / "report" / "figures" / "lost-update.png").stat().st_size > 10_000
    # the verifier's picture of the first finding, beside its words
    assert "![the verifier's picture](figures/lost-update-1.png)" in text
    assert (tmp_path / "report" / "figures" / "lost-update-1.png").stat().st_size > 10_000


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "libsrv_bench", *args], capture_output=True,
                          text=True, timeout=100)  # below the test's own limit


def test_cli_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from libsrv_bench.cli import main as bench_main

    small = ["--books", "50", "--clients", "2", "--requests", "100", "--workers", "0",
             "--out", str(tmp_path), "--no-progress"]
    ok = run_cli("run", *small, "--workload", "ping")  # the command itself, as typed
    assert ok.returncode == 0, ok.stderr
    assert "p99" in ok.stdout and "violations 0" in ok.stdout
    # the other exit statuses from the same entry point, in this process
    assert bench_main(["run", *small, "--workload", "ping", "--max-p99-ms", "0.0001"]) == 3
    assert "threshold missed" in capsys.readouterr().out
    assert bench_main(["baseline", *small]) == 0
    assert "echo" in capsys.readouterr().out
    assert bench_main(["run", *small, "--workload", "no-such-workload"]) == 2
    assert "unknown workload" in capsys.readouterr().err
    summary = json.loads(next(tmp_path.glob("ping-*/summary.json")).read_text())
    assert summary["command"].startswith("python -m libsrv_bench run")


def test_a_run_against_an_existing_server_knows_where_its_books_started(
        start_server, tmp_path: Path) -> None:
    from libsrv.generate import isbn_for, write_catalog
    from tests.helpers import client_for

    server = start_server(write_catalog(tmp_path / "there.json", 30), workers=2)
    with client_for(server) as lib:  # someone else's server, with a book already lent
        assert lib.loan_isbn(isbn_for(0), "earlier").success
    outcome = run_experiment(RunConfig(endpoint=server.endpoint, clients=6, requests=600,
                                       workload="hot-spot", hot=2, warmup=0), tmp_path,
                             progress=False)
    assert outcome.summary["requests"] == 600 and outcome.violations == 0
    assert outcome.summary["config"]["endpoint"] == server.endpoint
    assert server.alive()  # bench does not stop a server it did not start


def test_the_lean_generator_counts_what_an_echo_answers() -> None:
    from libsrv.process import ServerProcess
    from libsrv_bench.lean import lean_throughput

    echo = ServerProcess("unused", command=[sys.executable, "-m", "libsrv_bench", "echo",
                                            "--workers", "0"])
    with echo:
        result = lean_throughput(echo.endpoint, 3, 1.0)
    assert result.clients == 3 and result.timeouts == 0
    assert result.replies > 100


def test_the_lean_generator_sends_the_read_mostly_mix_a_server_counts(
        start_server, tmp_path: Path) -> None:
    from collections import Counter

    from libsrv.generate import write_catalog
    from libsrv_bench.lean import lean_throughput, read_mostly_frames
    from tests.helpers import client_for

    frames = read_mostly_frames(2000, 500, seed=3)
    kinds = Counter(json.loads(f)["action"] for f in frames)
    assert 0.87 < kinds["query_isbn"] / 2000 < 0.93 and kinds["loan_isbn"] > 60
    server = start_server(write_catalog(tmp_path / "c.json", 500), workers=2)
    result = lean_throughput(server.endpoint, 3, 1.0, frame=frames)
    assert result.timeouts == 0 and result.replies > 50
    with client_for(server) as lib:
        counted = lib.stats().raw["stats"]["by_action"]
    answered = sum(sum(codes.values()) for name, codes in counted.items()
                   if name in ("query_isbn", "loan_isbn", "return_isbn"))
    assert answered >= result.replies  # every reply the lean clients counted was a real one
    assert counted["loan_isbn"].get("OK", 0) > 0 and "return_isbn" in counted
    assert counted["query_isbn"].get("NOT_FOUND", 0) == 0  # the books exist


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.slow  # a server and two load processes started, then stopped
def test_sigterm_stops_a_run_and_everything_it_started(tmp_path: Path) -> None:
    """`kill` (SIGTERM) of a run ends it as Ctrl-C does: its server and its load processes
    stop too, instead of running on without it."""
    from libsrv_bench.procstat import process_tree
    from tests.helpers import wait_until

    bench = subprocess.Popen([sys.executable, "-m", "libsrv_bench", "run", "--duration", "60",
                              "--books", "50", "--no-progress", "--out", str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tree: list[int] = []
    try:
        def under_way() -> bool:
            commands = [_cmdline(pid) for pid in process_tree(bench.pid)[1:]]
            return any("libsrv.process" in c for c in commands) and \
                sum("multiprocessing.spawn" in c for c in commands) >= 2
        wait_until(under_way, timeout=60, message="the run's server and load processes")
        tree = process_tree(bench.pid)[1:]
        bench.terminate()
        _, err = bench.communicate(timeout=60)
        assert bench.returncode == 2 and "interrupted" in err, err
        wait_until(lambda: not any(_running(pid) for pid in tree), timeout=30,
                   message="every process of the run gone")
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait(10)
        for pid in tree:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
