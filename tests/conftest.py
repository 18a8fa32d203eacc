"""Shared fixtures: catalog copies, real servers on random loopback ports, a ZeroMQ context
that cannot hang a test. The helpers tests import are in tests/helpers.py."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq

from libsrv.process import ServerProcess
from tests.helpers import SHIPPED_CATALOG
from tests.leftovers import leftovers, tag_this_session

LEFTOVER_TAG = ""


def pytest_configure(config: pytest.Config) -> None:
    global LEFTOVER_TAG
    LEFTOVER_TAG = tag_this_session()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a process a test started is still alive at the end (it is killed)."""
    left = leftovers(LEFTOVER_TAG)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = "\n".join(["", "processes the tests started were still running at the end "
                           "(now killed):", *left])
        if reporter is not None:
            reporter.write_line(text, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    """A private copy of the shipped catalog."""
    path = tmp_path / "catalog.json"
    shutil.copy(SHIPPED_CATALOG, path)
    return path


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start real servers (``python -m libsrv serve --port 0``); all are stopped afterwards."""
    started: list[ServerProcess] = []

    def start(db: Path, **kwargs: object) -> ServerProcess:
        server = ServerProcess(db, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(params=["compiled", "python"])
def each_data_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once on each of the broker's data paths: the servers it starts inherit
    LIBSRV_DATA_PATH (which `serve --data-path auto` obeys, failing if it cannot)."""
    from libsrv.data_path_build import DataPathUnavailable, load
    from libsrv.defaults import DATA_PATH_VARIABLE

    if request.param == "compiled":
        try:
            load()
        except DataPathUnavailable as error:
            pytest.skip(f"no compiled data path here: {error}")
    monkeypatch.setenv(DATA_PATH_VARIABLE, request.param)
    return request.param


@pytest.fixture(scope="session")
def shared_servers(tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[Callable[[int], tuple[ServerProcess, Path]]]:
    """Servers shared by a test process's read-only tests, by shape (`--workers`), each on its
    own copy of the shipped catalog (the server and that file), started on first use and
    stopped at the end. A test that
    takes one must not change its catalog, and must count what it checks from a `stats` taken
    before and after (other tests use the same server)."""
    servers: dict[int, tuple[ServerProcess, Path]] = {}

    def shared(workers: int) -> tuple[ServerProcess, Path]:
        if workers not in servers:
            db = tmp_path_factory.mktemp(f"shared-w{workers}") / "catalog.json"
            shutil.copy(SHIPPED_CATALOG, db)
            servers[workers] = ServerProcess(db, workers=workers).start(), db
        return servers[workers]

    yield shared
    for server, _ in servers.values():
        server.stop()


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)
