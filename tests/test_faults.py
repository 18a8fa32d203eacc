"""Faults under load: a stopped worker, the whole server killed and restarted, a full disk and
a read-only catalog folder."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import filelock
import pytest

from libsrv.catalog import LENT, Catalog
from libsrv.client import LibraryClient
from libsrv.generate import isbn_for, write_catalog
from libsrv.process import ServerProcess
from libsrv.protocol import Code
from tests.helpers import ENGINES, SHIPPED_CATALOG, client_for, wait_until
from tests.workload import collect, expected_states, own_books

pytestmark = pytest.mark.slow

MP = multiprocessing.get_context("spawn")


def start_clients(endpoint: str, count: int, ops: int, *, timeout: float, retries: int,
                  per_client: int = 3) -> tuple[list, MP.Value, MP.Queue]:
    progress, results = MP.Value("i", 0), MP.Queue()
    clients = [MP.Process(target=own_books, args=(
        endpoint, [isbn_for(per_client * c + k) for k in range(per_client)], ops, f"c{c}",
        timeout, retries, progress, results)) for c in range(count)]
    for process in clients:
        process.start()
    return clients, progress, results


@pytest.mark.usefixtures("each_data_path")  # compiled and Python
def test_a_stopped_worker_is_replaced_and_retrying_clients_see_exactly_once(
        start_server, tmp_path: Path) -> None:
    db = write_catalog(tmp_path / "stop.json", 40)
    server = start_server(db, workers=2, args=["--worker-timeout", "2"])
    ops = 80
    clients, progress, results = start_clients(server.endpoint, 4, ops, timeout=1.0,
                                               retries=10)
    with client_for(server, timeout=5, retries=3) as lib:
        wait_until(lambda: progress.value >= 60, message="load under way")
        victim = lib.stats().raw["stats"]["worker_pids"][0]
        os.kill(victim, signal.SIGSTOP)  # longer than the client timeout: until it is killed
        try:
            def replaced() -> bool:
                stats = lib.stats().raw["stats"]
                return stats["worker_restarts"] >= 1 and victim not in stats["worker_pids"]

            wait_until(replaced, timeout=30, message="the stopped worker to be replaced")
            Catalog.from_bytes(db.read_bytes())  # valid JSON while it happens
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGCONT)
        histories = collect(clients, results)
        stats = lib.stats().raw["stats"]
    assert victim not in stats["worker_pids"]
    server.wait_for_output("has answered nothing for")
    for name, history in histories.items():
        assert len(history) == ops * 3, name
        assert {code for _, _, code in history} == {Code.OK}, name
    assert server.stop() == 0
    Catalog.from_bytes(db.read_bytes())


@pytest.mark.parametrize("engine", ENGINES)
def test_the_whole_server_killed_and_restarted_under_load(start_server, tmp_path: Path,
                                                          engine: str) -> None:
    db = write_catalog(tmp_path / "restart.json", 40)
    server = start_server(db, workers=2, storage=engine)
    port = int(server.endpoint.rsplit(":", 1)[1])
    ops = 60
    clients, progress, results = start_clients(server.endpoint, 3, ops, timeout=1.0,
                                               retries=40)
    wait_until(lambda: progress.value >= 40, message="load under way")
    server.kill()
    Catalog.from_bytes(db.read_bytes())
    restarted = start_server(db, workers=2, storage=engine, port=port)
    histories = collect(clients, results)
    with client_for(restarted) as lib:
        for name, history in histories.items():
            assert len(history) == ops * 3, name
            assert {code for _, _, code in history} == {Code.OK}, name
            for isbn, allowed in expected_states(history).items():
                book = lib.query_isbn(isbn).book
                assert ("lent" if book["estado"] == LENT else "available") in allowed
    assert restarted.stop() == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs of our own, so the test can fill it or make it read-only."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(folder)], capture_output=True)
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path) -> Path:
    """Write zeros until the disk refuses."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


@pytest.mark.parametrize("engine", ENGINES)
def test_a_full_disk_fails_writes_cleanly_and_recovers(start_server, small_disk: Path,
                                                       engine: str) -> None:
    db = small_disk / "catalog.json"
    shutil.copy(SHIPPED_CATALOG, db)
    server = start_server(db, workers=2, storage=engine)
    books = [b["ISBN"] for b in Catalog.from_bytes(db.read_bytes())][3:]
    acked: list[str] = []
    with client_for(server) as lib:
        assert lib.loan_isbn("9780140449266", "Ana").success
        filler = fill(small_disk)
        # The last page of a file may still have room: writes fail once the disk truly
        # refuses them, and every write acknowledged before that must survive.
        for isbn in books:
            refused = lib.loan_isbn(isbn, "Guillermo")
            if refused.code != Code.OK:
                break
            acked.append(isbn)
        assert refused.code == Code.INTERNAL, refused
        failed = refused.book or {}
        assert "No space" in refused.message
        isbn = books[len(acked)]
        assert not failed and lib.query_isbn(isbn).book["estado"] != LENT  # nothing changed
        assert lib.query_isbn("9780140449266").book["prestatario"] == "Ana"  # reads work
        Catalog.from_bytes(db.read_bytes())  # the file is whole
        filler.unlink()
        resumed = lib.loan_isbn(isbn, "Guillermo")
        assert resumed.success, resumed.message
    server.wait_for_output("storage failed on loan_isbn")
    assert server.stop() == 0
    final = Catalog.from_bytes(db.read_bytes())
    for lent_isbn in [*acked, isbn]:
        assert final.get(lent_isbn)["prestatario"] == "Guillermo"
    assert final.get("9780140449266")["prestatario"] == "Ana"
    assert not list(small_disk.glob("*.tmp-*"))


NO_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
               "--inh-caps=-dac_override,-dac_read_search"]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to run the server without "
                    "CAP_DAC_OVERRIDE")
@pytest.mark.parametrize("engine", ENGINES)
def test_a_read_only_catalog_folder(engine: str, tmp_path: Path) -> None:
    """The folder turns read-only under a server that respects permissions (root without
    CAP_DAC_OVERRIDE; plain root would ignore them).
    json: every write needs a new file there, so writes fail cleanly and resume. journal: the
    journal file itself stays writable, so writes go on and lose nothing; only the snapshot
    waits until the folder is writable again."""
    folder = tmp_path / "ro"
    folder.mkdir()
    try:
        db = folder / "catalog.json"
        shutil.copy(SHIPPED_CATALOG, db)
        server = ServerProcess(db, command=[
            *NO_OVERRIDE, sys.executable, "-m", "libsrv", "serve", "--port", "0",
            "--workers", "2", "--db", str(db), "--storage", engine, "--quiet"]).start()
        books = [b["ISBN"] for b in Catalog.from_bytes(db.read_bytes())]
        try:
            with client_for(server) as lib:
                assert lib.loan_isbn(books[0], "Ana").success
                folder.chmod(0o555)
                reply = lib.loan_isbn(books[1], "Guillermo")
                if engine == "json":
                    assert reply.code == Code.INTERNAL and "Permission denied" in reply.message
                    assert lib.query_isbn(books[1]).book["estado"] != LENT
                else:
                    assert reply.success
                assert lib.query_isbn(books[0]).book["prestatario"] == "Ana"
                Catalog.from_bytes(db.read_bytes())
                folder.chmod(0o755)
                assert lib.loan_isbn(books[2], "Eva").success
                if engine == "json":
                    assert lib.loan_isbn(books[1], "Guillermo").success
            assert server.stop() == 0
        finally:
            server.kill()
        final = Catalog.from_bytes(db.read_bytes())
        assert [final.get(i)["prestatario"] for i in books[:3]] == ["Ana", "Guillermo", "Eva"]
        if engine == "json":
            assert "storage failed on loan_isbn" in server.output
    finally:
        folder.chmod(0o755)


def test_a_lock_held_by_another_program_stops_writes_not_reads(start_server,
                                                               tmp_path: Path) -> None:
    """The class's design lets any program take the FileLock. While one holds it longer than
    the worker timeout: reads keep answering from memory, writes answer INTERNAL after the
    lock timeout, no worker is killed for waiting, and writes resume on release."""
    catalog_file = write_catalog(tmp_path / "held.json", 20)
    server = start_server(catalog_file, workers=2,
                          args=["--lock-timeout", "3", "--worker-timeout", "2"])
    with client_for(server) as lib:
        before = lib.stats().raw["stats"]
    held = filelock.FileLock(f"{catalog_file}.lock")
    held.acquire(timeout=10)
    try:
        def loan(n: int) -> tuple[str, str, float]:
            with LibraryClient(server.endpoint, timeout=15, retries=0) as lib:
                start = time.monotonic()
                reply = lib.loan_isbn(isbn_for(n), f"reader {n}")
                return reply.code, reply.message, time.monotonic() - start

        with ThreadPoolExecutor(4) as pool:
            loans = [pool.submit(loan, n) for n in range(4)]
            reads, deadline = 0, time.monotonic() + 5
            while time.monotonic() < deadline:  # every read answered, and quickly
                with LibraryClient(server.endpoint, timeout=1.0, retries=0) as lib:
                    assert lib.query_isbn(isbn_for(reads % 10)).success
                reads += 1
            outcomes = [f.result(timeout=30) for f in loans]
    finally:
        held.release()
    for code, message, seconds in outcomes:
        assert code == "INTERNAL" and "lock" in message, message
        assert 2.5 < seconds < 10
    assert reads > 20
    with client_for(server) as lib:
        after = lib.stats().raw["stats"]
        assert after["worker_restarts"] == before["worker_restarts"] == 0
        assert after["worker_pids"] == before["worker_pids"]
        assert lib.loan_isbn(isbn_for(0), "after the hold").success
    assert server.stop() == 0


def test_deleting_the_lock_file_under_load_loses_or_doubles_nothing(start_server,
                                                                     tmp_path: Path) -> None:
    """Anyone may delete `<catalog>.lock` (it is an ordinary file beside the catalog); the
    kit's own processes must still exclude each other, and their journal readers stay on
    line boundaries."""
    import threading

    from libsrv_bench.runner import RunConfig, run_experiment

    catalog_file = write_catalog(tmp_path / "deleted.json", 50)
    server = start_server(catalog_file, workers=4)
    stop = threading.Event()
    deleted = 0

    def delete_lock_file() -> None:
        nonlocal deleted
        while not stop.wait(0.0005):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{catalog_file}.lock")
                deleted += 1

    deleter = threading.Thread(target=delete_lock_file, daemon=True)
    deleter.start()
    try:
        outcome = run_experiment(RunConfig(endpoint=server.endpoint, workload="hot-spot", hot=1,
                                           clients=16, duration=10, warmup=0, timeout=5),
                                 tmp_path / "runs", progress=False)
    finally:
        stop.set()
        deleter.join(10)
    assert deleted > 50
    summary = outcome.summary
    assert summary["errors"] == 0 and summary["timeouts"] == 0, summary["codes"]
    assert outcome.violations == 0, outcome.verdict["details"][:3]
    with client_for(server) as lib:  # still answering, from a readable journal
        assert lib.query_isbn(isbn_for(0)).success
    assert server.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to run the server without "
                    "CAP_DAC_OVERRIDE")
def test_a_failed_last_flush_is_not_reported_as_up_to_date(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "catalog.json"
    shutil.copy(SHIPPED_CATALOG, db)
    books = [b["ISBN"] for b in Catalog.from_bytes(db.read_bytes())]
    server = ServerProcess(db, command=[
        *NO_OVERRIDE, sys.executable, "-m", "libsrv", "serve", "--port", "0", "--workers", "1",
        "--db", str(db), "--quiet"]).start()
    try:
        with client_for(server) as lib:
            assert lib.loan_isbn(books[0], "Ana").success
        folder.chmod(0o555)  # the snapshot cannot be rewritten at shutdown
        assert server.stop() == 1
    finally:
        folder.chmod(0o755)
    assert "up to date;" not in server.output and "could not be brought up to date" in \
        server.output
    with ServerProcess(db, workers=1) as again, client_for(again) as lib:
        assert lib.query_isbn(books[0]).book["prestatario"] == "Ana"  # the journal kept it


def test_a_killed_servers_socket_folder_is_swept_at_the_next_start(start_server,
                                                                   tmp_path: Path) -> None:
    from libsrv.broker import SOCKET_DIR_PREFIX
    from libsrv.scratch import OWNER_FILE

    db = write_catalog(tmp_path / "swept.json", 10)
    server = start_server(db, workers=1)
    ours = [d for d in Path(tempfile.gettempdir()).glob(SOCKET_DIR_PREFIX + "*")
            if (d / OWNER_FILE).read_text() == str(server.pid)]
    assert len(ours) == 1
    server.kill()
    assert ours[0].exists()  # SIGKILL: no clean-up ran
    again = start_server(db, workers=1)
    assert not ours[0].exists()
    assert again.stop() == 0


@pytest.mark.usefixtures("each_data_path")  # compiled and Python
def test_a_worker_that_cannot_be_started_is_retried_not_fatal(start_server,
                                                              tmp_path: Path) -> None:
    """Out of file descriptors, the broker cannot start a replacement worker: it keeps
    serving with the workers it has and tries again until it can."""
    import resource

    db = write_catalog(tmp_path / "nofds.json", 20)
    server = start_server(db, workers=2)
    with LibraryClient(server.endpoint, timeout=5, retries=0) as lib:  # connected before
        assert lib.ping().success
        victim = lib.stats().raw["stats"]["worker_pids"][0]
        soft, hard = resource.prlimit(server.pid, resource.RLIMIT_NOFILE)
        in_use = len(os.listdir(f"/proc/{server.pid}/fd"))
        # below what it holds: the dead worker's pipes, closed when it is reaped, must not
        # leave room for the replacement's
        resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (in_use - 8, hard))
        try:
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: "could not start worker" in server.output, timeout=30,
                       message="the broker to fail starting a replacement")
            assert server.alive()
            assert lib.query_isbn(isbn_for(1)).success  # the other worker serves
        finally:
            resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (soft, hard))

        def replaced() -> bool:
            pids = lib.stats().raw["stats"]["worker_pids"]
            return victim not in pids and all(pid and os.path.exists(f"/proc/{pid}")
                                              for pid in pids)

        wait_until(replaced, timeout=30, message="the replacement worker")
    assert server.stop() == 0
