"""The server as a library call: `libsrv.serve(ServerConfig(...))`, and a config that checks
itself."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import libsrv
from libsrv.config import ConfigError, ServerConfig
from libsrv.server import StopFlag
from tests.helpers import client_for_endpoint

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("workers", [0, 1])
def test_serve_runs_a_server_from_python(catalog_file: Path, workers: int) -> None:
    config = libsrv.ServerConfig(port=0, workers=workers, db=str(catalog_file), quiet=True)
    stop, ready = StopFlag(), threading.Event()
    lines: list[str] = []
    outcome: list[bool] = []

    def on_ready(line: str) -> None:
        lines.append(line)
        ready.set()

    thread = threading.Thread(target=lambda: outcome.append(
        libsrv.serve(config, stop=stop, on_ready=on_ready)), daemon=True)
    thread.start()
    try:
        assert ready.wait(60), "the server did not become ready"
        endpoint = lines[0].split("serving on ", 1)[1].split()[0]
        with client_for_endpoint(endpoint) as lib:
            assert lib.loan_isbn("9788437604947", "Ana").success
    finally:
        stop.set()
        thread.join(60)
    assert outcome == [True]  # stopped cleanly, the catalog file up to date
    assert "Ana" in catalog_file.read_text(encoding="utf-8")


@pytest.mark.parametrize("bad", [dict(workers=-1), dict(port=70000), dict(storage="sqlite"),
                                 dict(lang="fr"), dict(loan_days=0), dict(lock_timeout=0)])
def test_a_config_refuses_values_no_server_runs_with(bad: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        ServerConfig(**bad)
