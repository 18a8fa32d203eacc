"""`python -m libsrv_bench transports` for real, small: every row measured, every server
verified clean, the table written, the exit status 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from libsrv_bench.report import write_report
from libsrv_bench.settings import RunConfig
from libsrv_bench.transports import transport_rows

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def test_the_command_measures_and_verifies_every_row(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "libsrv_bench", "transports", "--rounds", "1", "--clients-list",
         "2", "--duration", "0.5", "--warmup", "0.2", "--books", "200", "--no-progress",
         "--out", str(tmp_path)], capture_output=True, text=True, timeout=360)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "transports.csv")
    wanted = set(transport_rows(RunConfig(workers=2)))
    assert wanted <= set(table["name"])
    assert (table[table["name"].isin(wanted)]["throughput"] > 0).all()
    for name in wanted:
        if " server, " in name:
            assert f"verdict, {name}: clean" in result.stdout
    assert "gRPC server, 2 processes: " in result.stdout and "µs of server CPU" in result.stdout
    report = write_report([tmp_path], tmp_path / "report").read_text(encoding="utf-8")
    assert "## ZeroMQ, gRPC and HTTP" in report and "(#zeromq-grpc-and-http)" in report
    assert "| 2 | HTTP server, 2 processes |" in report and "| clean |" in report
    assert (tmp_path / "report" / "figures" / "transports.png").stat().st_size > 10_000
