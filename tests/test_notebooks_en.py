"""The English notebooks (notebooks/en/), each executed top to bottom in a fresh kernel on small
parameters: what differs from the Spanish ones (the words, `LANG`, paths one folder deeper)
must run as well. The Spanish ones, with their checks, are in tests/test_notebooks.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.notebook_run import assert_no_error_or_warning, execute, outputs

# its own limit, above the deadlines inside it (300 s), so that those are what fail
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_concurrency_notebook_runs_in_english_too(tmp_path: Path) -> None:
    nb = execute("04-concurrency.ipynb", f"CLIENTS = 4\nSECONDS = 1\nROUNDS = 1\n"
                 f"OUT = {str(tmp_path)!r}", tmp_path, "en")
    text = outputs(nb)
    assert "with the lock: 400 loans recorded, the file counts 400 (0 lost)" in text
    assert "run 2/2 done" in text and "the feed: " in text
    assert_no_error_or_warning(nb)


def test_latency_notebook_runs_in_english(tmp_path: Path) -> None:
    # smaller than the Spanish run: only what differs (words, LANG, paths) is under test here
    nb = execute("03-latency.ipynb", f"CLIENTS = [1]\nWORKERS = [0]\nSECONDS = 0.5\n"
                 f"BOOKS = 200\nROUNDS = 1\nOUT = {str(tmp_path)!r}", tmp_path, "en")
    text = outputs(nb)
    assert "server CPU (µs/request)" in text and "run 4/4 done" in text
    # a starved limit round on a busy machine gives 10× or more, or no ratio at all (said so)
    assert re.search(r"The kit's server( runs at \d+\.\d\d× the transport's limit|: no ratio)",
                     text)
    assert_no_error_or_warning(nb)


def test_many_machines_notebook_runs_in_english(tmp_path: Path) -> None:
    pytest.importorskip("ipyparallel")
    nb = execute("05-many-machines.ipynb", f"ENGINES = 2\nCLIENTS = 8\nSECONDS = 1\n"
                 f"OUT = {str(tmp_path)!r}", tmp_path, "en")
    text = outputs(nb)
    assert "All of it ran on this" in text and "anomalies" in text
    assert_no_error_or_warning(nb)


def test_grading_notebook_runs_in_english(tmp_path: Path) -> None:
    nb = execute("06-grade-servers.ipynb", f"OUT = {str(tmp_path)!r}", tmp_path, "en")
    text = outputs(nb)
    assert "== grupo-con-lock: every check passed" in text, text[-3000:]
    assert "grupo-sin-lock: protocol check" in text and "concurrency fight clean: " in text
    assert "The whole report:" in text
    assert_no_error_or_warning(nb)


def test_faults_notebook_runs_in_english(tmp_path: Path) -> None:
    nb = execute("07-faults.ipynb", f"CLIENTS = 4\nHOT = 2\nSECONDS = 3\nOUT = {str(tmp_path)!r}",
                 tmp_path, "en")
    verdicts = re.findall(r"verdict: (clean|NOT CLEAN)", outputs(nb))
    assert len(verdicts) == 7 and verdicts[5] == "NOT CLEAN", verdicts
    assert_no_error_or_warning(nb)


def test_transports_notebook_runs_in_english(tmp_path: Path) -> None:
    nb = execute("08-transports.ipynb", f"CLIENTS = [1]\nSECONDS = 0.5\nROUNDS = 1\n"
                 f"WORKERS = 1\nOUT = {str(tmp_path)!r}", tmp_path, "en")
    text = outputs(nb)
    assert "verdict, gRPC server, 1 process: clean" in text, text[-2000:]
    assert "run 10/10 done" in text
    assert_no_error_or_warning(nb)
