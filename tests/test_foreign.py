"""bench against student-style servers (tests/class_servers.py, our own code): the class's
protocol, the target's own catalog file, the verified fight, grading many groups. Dialects
without sockets and the fakes that must never be clean are in tests/test_dialects.py."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zmq

from libsrv.process import ServerProcess
from libsrv_bench.cli import main as bench_main
from libsrv_bench.runner import RunError, RunOutcome, run_experiment
from libsrv_bench.settings import RunConfig
from tests.class_servers import command
from tests.helpers import CLASS_DB, free_port

pytestmark = pytest.mark.slow

@pytest.fixture
def class_db(tmp_path: Path) -> Path:
    db = tmp_path / "DB.json"
    shutil.copy(CLASS_DB, db)
    return db


@pytest.fixture
def class_server(start_server, class_db: Path) -> Callable[..., ServerProcess]:
    """Start a class-style server of ours on the class's data (stopped after the test)."""
    return lambda kind, workers=0: start_server(class_db, command=command(kind, class_db,
                                                                          workers))


def fight(endpoint: str, db: Path, **settings: Any) -> RunConfig:
    """The concurrency fight: loans and returns on two books from twelve clients."""
    return RunConfig(**{"endpoint": endpoint, "dialect": "class", "catalog": str(db),
                        "workload": "hot-spot", "hot": 2, "clients": 12, "duration": 2.0,
                        "warmup": 0.2, "seed": 1, **settings})


def run(config: RunConfig, out: Path) -> RunOutcome:
    return run_experiment(config, out, progress=False)


# ---------------------------------------------------------------- class-style servers


@pytest.mark.parametrize("workers", [0, 2])
def test_a_correct_class_style_server_is_measured_and_clean(
        class_server, class_db: Path, tmp_path: Path, workers: int) -> None:
    server = class_server("correct", workers)
    outcome = run(fight(server.endpoint, class_db, target=f"group-{workers}"), tmp_path)
    summary = outcome.summary
    assert summary["clean"], summary["not_clean"]
    assert summary["writes_acknowledged"] > 20 and summary["throughput"] > 0
    assert summary["target"] == f"group-{workers}" and summary["dialect"] == "class"
    assert outcome.verdict["books_checked"] == 2


@pytest.mark.parametrize(("kind", "workers", "finding"), [
    ("nolock", 2, "anomalies"),  # lost updates between the workers
    ("liar", 0, "anomalies"),  # loans acknowledged, never written
])
def test_a_broken_class_style_server_is_caught(class_server, class_db: Path, tmp_path: Path,
                                               kind: str, workers: int, finding: str) -> None:
    server = class_server(kind, workers)
    outcome = run(fight(server.endpoint, class_db), tmp_path)
    assert not outcome.summary["clean"] and outcome.violations > 0
    assert finding in " ".join(outcome.summary["not_clean"])
    assert all(d["detail"] for d in outcome.verdict["details"])  # findings in words


def test_a_server_whose_file_breaks_under_races_is_not_clean(class_server, class_db: Path,
                                                             tmp_path: Path) -> None:
    server = class_server("breaks", 2)
    outcome = run(fight(server.endpoint, class_db), tmp_path)
    assert not outcome.summary["clean"], outcome.summary
    said = " ".join(outcome.summary["not_clean"]) + json.dumps(outcome.verdict["details"])
    assert any(word in said for word in ("file-unreadable", "failed", "anomalies"))


def test_the_kit_server_speaks_the_class_dialect_too(tmp_path: Path) -> None:
    """The same fight against the kit's own server in the class's protocol: clean with the
    lock, caught without it."""
    base = {"dialect": "class", "workload": "hot-spot", "hot": 2, "clients": 12,
            "duration": 2.0, "warmup": 0.2, "books": 40, "seed": 1}
    safe = run(RunConfig(**base), tmp_path)
    assert safe.summary["clean"], safe.summary["not_clean"]
    unsafe = run(RunConfig(**base, unsafe_no_lock=True), tmp_path)
    assert unsafe.violations > 0


def test_the_command_line_grades_a_class_server(class_server, class_db: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    good = class_server("correct")
    flags = ["run", "--dialect", "class", "--catalog", str(class_db), "--workload", "hot-spot",
             "--hot", "2", "--clients", "8", "--duration", "1", "--warmup", "0.2",
             "--out", str(tmp_path), "--no-progress"]
    assert bench_main([*flags, "--endpoint", good.endpoint, "--name", "g1"]) == 0
    assert "clean: no anomaly" in capsys.readouterr().out
    good.stop()
    liar = class_server("liar")
    assert bench_main([*flags, "--endpoint", liar.endpoint, "--name", "g2"]) == 1
    assert "NOT CLEAN (exit 1 = anomalies found)" in capsys.readouterr().out
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert any("g1" in f for f in folders) and any("g2" in f for f in folders)


def test_a_dialect_that_cannot_list_needs_the_catalog_file(class_server) -> None:
    server = class_server("correct")
    with pytest.raises(RunError, match="--catalog"):
        run_experiment(RunConfig(endpoint=server.endpoint, dialect="class",
                                 workload="hot-spot"), progress=False)


def test_a_workload_the_dialect_cannot_send_is_refused_up_front(class_server,
                                                                class_db: Path) -> None:
    server = class_server("correct")
    with pytest.raises(RunError, match="cannot send ping"):
        run_experiment(fight(server.endpoint, class_db, workload="ping"), progress=False)


# ---------------------------------------------------------------- grading many groups


def test_grade_three_groups_in_one_report(tmp_path: Path) -> None:
    """A correct group, one without a lock (two workers behind zmq.proxy), one that lies:
    each started by the grader from its command, graded, and compared in one report."""
    from libsrv_bench.grade import grade, write_grade_report

    lines = []
    for name, kind, workers in (("correct", "correct", 0), ("nolock", "nolock", 2),
                                ("liar", "liar", 0)):
        folder = tmp_path / name
        folder.mkdir()
        shutil.copy(CLASS_DB, folder / "DB.json")
        port = free_port()
        lines += ["[[group]]", f'name = "{name}"', f'endpoint = "tcp://127.0.0.1:{port}"',
                  'dialect = "class"', f'catalog = "{name}/DB.json"', f'cwd = "{name}"',
                  f"command = {json.dumps(command(kind, 'DB.json', workers, port))}", ""]
    groups = tmp_path / "groups.toml"
    groups.write_text("\n".join(lines))
    steps: list[str] = []
    results = {r.group.name: r for r in grade(groups, tmp_path / "report", log=steps.append,
                                              lang="es")}
    assert "correct: comprobación del protocolo" in steps  # progress in the class's language
    good = results["correct"]
    assert good.passed, [(c.name, c.detail) for c in good.checks if not c.passed]
    assert good.p50_ms_1 and good.throughput_16
    assert any(c.name == "SIGKILL and restart" and c.passed for c in good.checks)
    for bad in ("nolock", "liar"):
        fight = next(c for c in results[bad].checks if c.name == "concurrency fight clean")
        assert not fight.passed and "anomalies" in fight.detail
    report = (tmp_path / "report" / "README.md").read_text()
    assert all(f"## {name}" in report for name in results) and "✘" in report
    assert report.startswith("# Informe de calificación") and "pelea concurrente limpia" in report
    assert "anomalías: actualizaciones perdidas o duplicadas" in report
    # the same results as an English report: the facts were kept, not only the words
    write_grade_report(list(results.values()), tmp_path / "report", "en")
    english = (tmp_path / "report" / "README.md").read_text()
    assert english.startswith("# Grading report") and "anomalies: lost or doubled" in english
    report = english
    assert (tmp_path / "report" / "grade.png").stat().st_size > 10_000
    # the verifier's picture of each failed fight's first finding, none for the correct group
    assert (tmp_path / "report" / "nolock-finding.png").stat().st_size > 10_000
    assert not (tmp_path / "report" / "correct-finding.png").exists()
    assert "![the fight's first finding" in report


class SerialisingGateway:
    """A translator done the wrong way: one REP socket in front, one REQ socket to the
    server, one request at a time. Whatever the server does, nothing overlaps there."""

    def __init__(self, ctx: zmq.Context, target: str) -> None:
        self._front = ctx.socket(zmq.REP)
        self._front.linger = 0
        self.endpoint = f"tcp://127.0.0.1:{self._front.bind_to_random_port('tcp://127.0.0.1')}"
        self._back = ctx.socket(zmq.REQ)
        self._back.linger = 0
        self._back.connect(target)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._front.poll(50):
                continue
            self._back.send(self._front.recv())
            if not self._back.poll(5000):
                return  # the server is gone; the bench's clients time out and say so
            self._front.send(self._back.recv())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._front.close()
        self._back.close()


def test_the_race_is_found_directly_and_hidden_only_by_a_serialising_gateway(
        class_server, class_db: Path, tmp_path: Path, ctx: zmq.Context) -> None:
    """The dialect translates in every client, so the load reaches the server concurrently
    and its race shows; the same server behind a gateway that serialises requests has no
    race left to show (which is why the bench must never be that gateway)."""
    server = class_server("nolock", 2)
    direct = run(fight(server.endpoint, class_db), tmp_path)
    assert direct.violations > 0
    shutil.copy(CLASS_DB, class_db)
    gateway = SerialisingGateway(ctx, server.endpoint)
    try:
        hidden = run(fight(gateway.endpoint, class_db), tmp_path)
    finally:
        gateway.close()
    assert hidden.violations == 0 and hidden.summary["clean"], hidden.summary["not_clean"]


# ------------------------------------------------------ a group's server, started by bench


def test_a_group_server_started_by_bench_is_killed_paused_and_stopped(
        class_db: Path, tmp_path: Path) -> None:
    """--server-cmd: bench starts the group's server, SIGKILLs and restarts it (kill-server)
    and pauses it (stop-server) during the fight, and stops it at the end. A correct server
    keeps every acknowledged loan through the kill, so the run is clean; nothing is left."""
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    cmd = " ".join(command("correct", class_db, 0, port))
    outcome = run(fight(endpoint, class_db, server_cmd=cmd, duration=3.5, timeout=0.5,
                        clients=6, faults=("kill-server@1", "stop-server@2.2+0.3")), tmp_path)
    faults = outcome.summary["faults"]
    assert [(f["kind"], bool(f["pid"]), f["error"] or None) for f in faults] == [
        ("kill-server", True, None), ("stop-server", True, None)]
    assert faults[0]["restart_s"] is not None and faults[0]["pid"] != faults[1]["pid"]
    after = outcome.samples[outcome.samples["send_ms"] > (faults[0]["at_s"] +
                                                          faults[0]["restart_s"]) * 1000]
    assert (after["code"] == "OK").any()  # the restarted server answered
    assert outcome.summary["clean"], outcome.summary["not_clean"]
    assert outcome.summary["cost"].get("server_cpu_us_per_request") is None  # restarted
    with zmq.Context() as ctx, ctx.socket(zmq.REQ) as probe:  # stopped at the end
        probe.linger = 0
        probe.connect(endpoint)
        probe.send(b'{"action": "Consulta por ISBN", "isbn": "9788437604947"}')
        assert not probe.poll(500)
