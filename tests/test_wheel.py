"""A plain wheel install, run from another folder: the server on the shipped catalog, a bench
experiment, and the forms page all work without the checkout.

The wheel is built from a copy of the sources and installed with ``--no-deps`` into a fresh
virtual environment; the third-party libraries come from the test's own environment through a
path entry (a `.pth` line, which puts that folder on sys.path without running its own `.pth`
files, so the checkout's editable install stays out). The wheel's own files are what run: each
command first checks where `libsrv` was imported from.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import urllib.request
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from libsrv.client import LibraryClient
from tests.helpers import ROOT, ChildOutput, end_process, free_port, wait_until

# its own limit, above the deadlines inside it (300 s), so that those are what fail
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SOURCES = ("pyproject.toml", "README.md", "libsrv", "libsrv_bench")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the fresh environment's bin folder, an empty working folder outside the checkout)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(ROOT / name, source / name)
    wheels = base / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-q", "-w", str(wheels), str(source)],
                   check=True, timeout=300)
    wheel = next(wheels.glob("libsrv-*.whl"))
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    subprocess.run([bin_dir / "python", "-m", "pip", "install", "--no-deps", "-q",
                    "--disable-pip-version-check", str(wheel)], check=True, timeout=300)
    site = subprocess.run([bin_dir / "python", "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"]
                                                           + "\n")
    work = base / "elsewhere"
    work.mkdir()
    yield bin_dir, work


def environment(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # Jupyter's data files (Voila's templates) belong to the borrowed dependencies' prefix
    env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_wheel_is_what_runs(installed: tuple[Path, Path]) -> None:
    bin_dir, work = installed
    out = subprocess.run([bin_dir / "python", "-c",
                          "import libsrv, libsrv_bench; print(libsrv.__file__); "
                          "print(libsrv_bench.__file__)"],
                         capture_output=True, text=True, check=True, cwd=work,
                         env=environment(bin_dir)).stdout.split()
    venv_root = bin_dir.parent.resolve()
    for path in out:
        assert Path(path).resolve().is_relative_to(venv_root), path
    assert not (work / "libsrv").exists()


def test_serve_from_another_folder_uses_the_shipped_catalog(installed: tuple[Path, Path]
                                                            ) -> None:
    bin_dir, work = installed
    server = subprocess.Popen([bin_dir / "libsrv", "serve", "--port", "0", "--workers", "1",
                               "--quiet"], cwd=work, env=environment(bin_dir), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        address = ChildOutput(server).wait_for(r"serving on (tcp://\S+)", timeout=60).group(1)
        with LibraryClient(str(address), timeout=5, retries=2) as lib:
            reply = lib.loan_isbn("9788437604947", "Wheel")
        assert reply.success, reply.raw
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    assert server.returncode == 0
    books = json.loads((work / "data" / "catalog.json").read_text(encoding="utf-8"))["libros"]
    lent = [book for book in books if book["ISBN"] == "9788437604947"]
    assert lent[0]["prestatario"] == "Wheel"
    assert len(books) > 30  # the shipped catalog, not an empty one


def test_a_bench_run_from_another_folder(installed: tuple[Path, Path]) -> None:
    """With a compiler, the broker's data path and the load loop are built from the wheel's
    own C files (into an empty cache), so the wheel must ship them."""
    bin_dir, work = installed
    env = environment(bin_dir)
    compiled = shutil.which(os.environ.get("CC") or "cc") is not None
    if compiled:
        env.update(XDG_CACHE_HOME=str(work / "cache"), LIBSRV_DATA_PATH="compiled",
                   LIBSRV_LOAD_LOOP="compiled")
    result = subprocess.run([bin_dir / "libsrv-bench", "run", "--clients", "2", "--duration",
                             "1", "--books", "50", "--workers", "1", "--out", "runs"],
                            cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    summaries = list((work / "runs").glob("*/summary.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert summary["requests"] > 0 and summary["violations"] == 0 and summary["verdict_ok"]
    if compiled:
        assert summary["load"]["loop"] == "compiled"
        built = sorted(path.name.split("-")[0] for path in (work / "cache" / "libsrv").glob("*.so"))
        assert built == ["client_loop", "data_path"], built


def test_the_forms_page_from_another_folder(installed: tuple[Path, Path]) -> None:
    bin_dir, work = installed
    port = free_port()
    page = subprocess.Popen([bin_dir / "libsrv", "forms", "--port", str(port),
                             "--cull-after", "5"], cwd=work, env=environment(bin_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def html() -> str | None:
            if page.poll() is not None:
                raise AssertionError(page.stdout.read())  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as answer:
                    return answer.read().decode()
            except OSError:
                return None

        body = wait_until(html, timeout=120, message="the forms page to answer")
        assert "Biblioteca" in str(body)
    finally:
        end_process(page, timeout=60)
