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
    share = re.search(r"calibration: bench's generator reached (\d+\.\d\d) of", out)
    assert share and 0.2 < float(share.group(1)) < 5, out

