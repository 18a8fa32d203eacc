"""The class's LAN on one machine: a server host and two client hosts in network namespaces
(scripts/netlab.sh), with real TCP between them, and a cable pulled mid-load."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from libsrv.catalog import Catalog
from libsrv.generate import isbn_for, write_catalog
from libsrv.process import ServerProcess
from libsrv_bench.verifier import OK, UNKNOWN, Op, verify
from tests.helpers import ROOT, SHIPPED_CATALOG, wait_until

SCRIPT = ROOT / "scripts" / "netlab.sh"
SERVER_IP = "192.0.2.1"


def _lab_allowed() -> str | None:
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    probe = f"probe{secrets.token_hex(3)}"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if result.returncode:
        return f"cannot create network namespaces here: {result.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


REASON = _lab_allowed() if os.name == "posix" else "not POSIX"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(REASON is not None, reason=REASON or "")]


@pytest.fixture
def lab() -> Iterator[str]:
    prefix = f"l{secrets.token_hex(3)}"
    subprocess.run(["bash", str(SCRIPT), "up", prefix], check=True, timeout=60)
    try:
        yield prefix
    finally:
        subprocess.run(["bash", str(SCRIPT), "down", prefix], timeout=60)


def in_host(lab: str, host: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", f"{lab}-{host}", *command]


@pytest.fixture
def lab_server(lab: str, tmp_path: Path) -> Iterator[tuple[str, ServerProcess, Path]]:
    db = tmp_path / "catalog.json"
    db.write_bytes(SHIPPED_CATALOG.read_bytes())
    server = ServerProcess(db, command=in_host(
        lab, "srv", sys.executable, "-m", "libsrv", "serve", "--host", SERVER_IP, "--port",
        "5555", "--workers", "2", "--db", str(db), "--quiet"))
    server.start()
    try:
        yield lab, server, db
    finally:
        server.stop()


def client(lab: str, host: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(in_host(lab, host, sys.executable, "-m", "tests.netclient", *args),
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)


def result(process: subprocess.Popen[str], timeout: float = 120) -> dict:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out
    return json.loads(out.strip().splitlines()[-1])


def test_every_operation_works_from_both_client_hosts(lab_server) -> None:
    lab, server, _ = lab_server
    assert server.endpoint == f"tcp://{SERVER_IP}:5555"
    procs = [client(lab, host, "ops", server.endpoint, host) for host in ("c1", "c2")]
    for proc in procs:
        assert result(proc)["codes"] == ["OK"] * 8


def test_both_clients_loan_the_same_book_and_only_one_wins(lab_server) -> None:
    lab, server, _ = lab_server
    for round_number in range(3):
        isbn = ["9788497592208", "9788420471839", "9788437602394"][round_number]
        at = time.time() + 1.5
        procs = [client(lab, host, "race", server.endpoint, host, isbn, str(at))
                 for host in ("c1", "c2")]
        outcomes = [result(p) for p in procs]
        codes = sorted(o["code"] for o in outcomes)
        assert codes == ["OK", "UNAVAILABLE"], outcomes
        winner = next(o for o in outcomes if o["code"] == "OK")["borrower"]
        assert all(o["borrower"] == winner for o in outcomes)  # the loser sees the winner


def test_pulling_a_cable_mid_load_hangs_nobody_and_loses_nothing(lab: str,
                                                                 tmp_path: Path) -> None:
    db = write_catalog(tmp_path / "lab.json", 40)
    server = ServerProcess(db, command=in_host(
        lab, "srv", sys.executable, "-m", "libsrv", "serve", "--host", SERVER_IP, "--port",
        "5555", "--workers", "2", "--db", str(db), "--quiet")).start()
    try:
        books = {"c1": [isbn_for(n) for n in range(0, 4)],
                 "c2": [isbn_for(n) for n in range(4, 8)]}
        rounds = 40
        progress = tmp_path / "c1.progress"
        procs = {host: client(lab, host, "own", server.endpoint, host, ",".join(isbns),
                              str(rounds), str(tmp_path / f"{host}.progress"))
                 for host, isbns in books.items()}
        wait_until(lambda: progress.exists() and int(progress.read_text()) >= 30, timeout=60,
                   message="load under way")
        subprocess.run(["bash", str(SCRIPT), "link", "c1", "down", lab], check=True)
        pulled = time.monotonic()
        wait_until(lambda: time.monotonic() - pulled > 3.0, message="3 s of outage")
        subprocess.run(["bash", str(SCRIPT), "link", "c1", "up", lab], check=True)
        out = {host: result(proc, timeout=180)["history"] for host, proc in procs.items()}
    finally:
        server.stop()
    ops, served = [], {}
    final = Catalog.from_bytes(db.read_bytes())
    longest = max(end - start for _, _, _, start, end, _ in out["c1"]) / 1e9
    assert longest > 2.5  # the outage really caught c1 mid-request
    for host, history in out.items():
        assert len(history) == rounds * 4  # nobody hung: every request ended
        assert {code for _, _, code, *_ in history} == {"OK"}, host  # exactly once, each
        for isbn, kind, code, start, end, borrower in history:
            ops.append(Op(int(host[1]), kind, isbn, start, end, OK if code == "OK" else UNKNOWN,
                          host if kind == "loan" else None, borrower))
    for isbns in books.values():
        for isbn in isbns:
            served[isbn] = final.get(isbn)
    verdict = verify(ops, {}, served, on_disk=served)
    assert verdict.ok, verdict.as_dict()


CONTROLLER_IP = "192.0.2.4"


@pytest.mark.timeout(400)
def test_bench_from_two_engine_hosts_is_one_history_and_survives_a_pulled_cable(
        lab: str, tmp_path: Path) -> None:
    """The controller on its own host, an engine on each client host, the server on its own:
    load from both engine hosts is one verified run; then c1's cable is pulled mid-run and the
    run still ends, naming the engine whose results are missing."""
    pytest.importorskip("ipyparallel")
    bin_dir = Path(sys.executable).parent
    profile = tmp_path / "ipp"
    db = write_catalog(tmp_path / "lab.json", 40)
    server = ServerProcess(db, command=in_host(
        lab, "srv", sys.executable, "-m", "libsrv", "serve", "--host", SERVER_IP, "--port",
        "5555", "--workers", "2", "--db", str(db), "--quiet")).start()
    helpers: list[subprocess.Popen[str]] = []
    try:
        helpers.append(subprocess.Popen(in_host(
            lab, "ctl", str(bin_dir / "ipcontroller"), f"--ip={CONTROLLER_IP}",
            f"--profile-dir={profile}", "--log-level=ERROR"), cwd=ROOT, text=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        engine_file = profile / "security" / "ipcontroller-engine.json"
        client_file = profile / "security" / "ipcontroller-client.json"
        wait_until(lambda: engine_file.exists() and client_file.exists(), timeout=60,
                   message="the controller's connection files")
        for host in ("c1", "c2"):
            helpers.append(subprocess.Popen(in_host(
                lab, host, str(bin_dir / "ipengine"), f"--file={engine_file}",
                "--log-level=ERROR"), cwd=ROOT, text=True, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True))

        def bench(*extra: str) -> subprocess.Popen[str]:
            return subprocess.Popen(in_host(
                lab, "ctl", sys.executable, "-m", "libsrv_bench", "run", "--cluster",
                str(client_file), "--engines", "2", "--endpoint", server.endpoint,
                "--clients", "20", "--workload", "hot-spot", "--hot", "2", "--seed", "1",
                "--out", str(tmp_path / "runs"), "--no-progress", *extra), cwd=ROOT,
                text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        whole = bench("--duration", "3", "--label", "whole")
        out = whole.communicate(timeout=180)[0]
        assert whole.returncode == 0, out
        summary = json.loads((tmp_path / "runs" / "whole" / "summary.json").read_text())
        assert summary["engines"] == 2 and summary["violations"] == 0
        assert all(r["status"] == "ok" and r["requests"] > 50 for r in summary["engine_runs"])
        before = server_requests(lab, server.endpoint)
        pulled = bench("--duration", "6", "--label", "pulled")
        wait_until(lambda: server_requests(lab, server.endpoint) > before + 300,
                   timeout=60, message="the second run to be under way")
        subprocess.run(["bash", str(SCRIPT), "link", "c1", "down", lab], check=True)
        out = pulled.communicate(timeout=240)[0]  # nothing hangs
        assert pulled.returncode == 2, out  # a run with a part missing is not a clean pass
        assert (tmp_path / "runs" / "pulled" / "summary.json").exists(), out
        cut = json.loads((tmp_path / "runs" / "pulled" / "summary.json").read_text())
        statuses = sorted(r["status"] for r in cut["engine_runs"])
        assert statuses == ["missing", "ok"], cut["engine_runs"]
        assert "missing" in cut["verdict_skipped"] and "MISSING" in out
    finally:
        subprocess.run(["bash", str(SCRIPT), "link", "c1", "up", lab])
        for helper in helpers:  # with what each started (the controller's schedulers)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(helper.pid, signal.SIGKILL)
            helper.wait(10)
        server.stop()


def server_requests(lab: str, endpoint: str) -> int:
    """The server's request count, asked from inside the lab (the host cannot reach it)."""
    asked = subprocess.run(in_host(lab, "ctl", sys.executable, "-m", "libsrv", "call", "stats",
                                   "--endpoint", endpoint), capture_output=True, text=True,
                           timeout=60, cwd=ROOT)
    return int(json.loads(asked.stdout)["stats"]["requests"]) if asked.returncode == 0 else 0
