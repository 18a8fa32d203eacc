"""The forms page as a student and a health check meet it, and what it leaves behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from libsrv.scratch import OWNER_FILE
from libsrv.ui import COPY_PREFIX, LocalServer, sweep_stale_copies
from tests.helpers import ChildOutput, free_port, wait_until

pytestmark = pytest.mark.slow


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process below `pid`, read from /proc."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ") \
                .decode(errors="replace")
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent:
                found.append((child, commands.get(child, "")))
                frontier.append(child)
    return found


def kernels(pid: int) -> int:
    return sum("ipykernel" in command for _, command in descendants(pid))


def fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.read().decode()
    except OSError:
        return None


def test_a_health_check_leaves_no_kernel_and_the_page_cleans_up(tmp_path: Path) -> None:
    port = free_port()
    page = subprocess.Popen([sys.executable, "-m", "libsrv", "forms", "--port", str(port),
                             "--cull-after", "5"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        lines = ChildOutput(page)
        copy = Path(lines.wait_for(r"shipped catalog, (\S+),", timeout=60).group(1))
        assert copy.exists()
        html = wait_until(lambda: fetch(f"http://127.0.0.1:{port}/"), timeout=90,
                          message="the forms page to answer")
        # a student sees the heading and the forms, nothing meant for notebook authors
        assert "Biblioteca" in html
        for author_text in ("ENDPOINT", "LIBSRV_", "environment variable"):
            assert author_text not in html
        # the GET started a kernel that nobody connects to: it must not stay
        assert kernels(page.pid) == 1
        wait_until(lambda: kernels(page.pid) == 0, timeout=60,
                   message="the unconnected kernel to be culled")
        started = psutil.Process(page.pid).children(recursive=True)  # Voilà, its server...
        assert any("voila" in " ".join(p.cmdline()) for p in started)
        page.send_signal(signal.SIGTERM)  # to the page's process alone, as a service manager
        page.wait(60)
        output = lines.wait_closed()
        _, alive = psutil.wait_procs(started, timeout=30)
    finally:
        if page.poll() is None:
            page.kill()
            page.wait(10)
    assert not alive, [" ".join(p.cmdline())[:80] for p in alive]  # Voilà stopped too
    assert not copy.parent.exists(), "the catalog copy outlived the page"
    for noise in ("WARNING", "Traceback", "DeprecationWarning", "Parent appears to have exited"):
        assert noise not in output, output


def test_a_local_server_removes_its_copy_and_old_copies_are_swept(tmp_path: Path) -> None:
    server = LocalServer(workers=0)
    folder = server.db.parent
    assert server.db.exists() and folder.name.startswith(COPY_PREFIX)
    server.stop()
    assert not folder.exists()
    # copies whose kernel was killed (no stop) are swept; a live owner's copy is kept
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)
    orphan, alive = tmp_path / f"{COPY_PREFIX}orphan", tmp_path / f"{COPY_PREFIX}alive"
    for folder, pid in ((orphan, gone.pid), (alive, os.getpid())):
        folder.mkdir()
        (folder / OWNER_FILE).write_text(str(pid))
        (folder / "catalog.json").write_text("{}")
    assert sweep_stale_copies(tmp_path) == [orphan]
    assert alive.exists() and not orphan.exists()


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def test_the_page_asks_for_its_token_and_caps_its_kernels(tmp_path: Path) -> None:
    port = free_port()
    page = subprocess.Popen([sys.executable, "-m", "libsrv", "forms", "--port", str(port),
                             "--token", "sesame", "--max-kernels", "2", "--cull-after", "300"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=tmp_path)
    base = f"http://127.0.0.1:{port}/"
    try:
        lines = ChildOutput(page)
        lines.wait_for(r"\?token=sesame", timeout=60)
        wait_until(lambda: status_of(base) not in (0,), timeout=90,
                   message="the forms page to answer")
        without = fetch(base)  # no token: the login page, no forms, no kernel
        assert without is None or "Biblioteca" not in without
        assert kernels(page.pid) == 0
        assert [status_of(base + "?token=sesame") for _ in range(3)] == [200, 200, 503]
        assert kernels(page.pid) == 2
        try:  # the visitor past the cap is told why, in both languages
            urllib.request.urlopen(base + "?token=sesame", timeout=30)
            pytest.fail("a third visitor got the page")
        except urllib.error.HTTPError as full:
            told = f"{full.reason} {full.read().decode(errors='replace')}"
        assert "class is full" in told and "clase está llena" in told, told[:500]
    finally:
        page.send_signal(signal.SIGTERM)
        try:
            page.wait(60)
        except subprocess.TimeoutExpired:
            page.kill()
            page.wait(10)


def test_a_page_open_to_the_network_gets_a_token_by_default() -> None:
    from libsrv.forms_page import page_token

    assert page_token("127.0.0.1", None) is None
    assert page_token("0.0.0.0", None) and page_token("0.0.0.0", None) != \
        page_token("0.0.0.0", None)
    assert page_token("0.0.0.0", "") is None and page_token("0.0.0.0", "t") == "t"
