"""`compare` end to end: the reference, its calibration by the independent lean generator, and
the rows beside it, in interleaved rounds."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_compare_calibrates_its_reference_with_an_independent_generator(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import re

    from libsrv_bench.cli import main as bench_main

    code = bench_main(["compare", "--rounds", "1", "--duration", "1", "--warmup", "0.2",
                       "--clients", "4", "--storages", "", "--out", str(tmp_path),
                       "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "reference, lean generator" in out
    share = re.search(r"Calibration: the kit's generator got (?:only )?(\d+\.\d\d)× from the "
                      r"limit what an independent one-process-per-client generator got", out)
    assert share and 0.2 < float(share.group(1)) < 5, out



def test_servers_compared_with_each_other_are_not_calibrated_against_another_request(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The lean generator sends one fixed request: against a server reference (title queries
    here) it would measure other requests than bench's, and warn of a throttled reference
    that is not."""
    from libsrv_bench.cli import main as bench_main

    code = bench_main(["compare", "--reference", "server", "--workers", "1", "--workers-list",
                       "2", "--workload", "mix:query_title=100", "--books", "2000", "--rounds",
                       "1", "--duration", "1", "--warmup", "0.2", "--clients", "4", "--out",
                       str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "broker + 2 workers" in out  # the candidate ran beside the reference
    assert "lean generator" not in out and "WARNING" not in out, out
