"""Every notebook, executed top to bottom in a real Jupyter kernel, on small parameters."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import ROOT

# its own limit, above the deadlines inside it (300 s), so that those are what fail
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

NOTEBOOKS = ROOT / "notebooks"


def execute(name: str, parameters: str, tmp_path: Path) -> nbformat.NotebookNode:
    """Run a notebook with `parameters` injected after its tagged parameters cell."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    index = next(i for i, cell in enumerate(nb.cells)
                 if "parameters" in cell.metadata.get("tags", []))
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(parameters))
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def outputs(nb: nbformat.NotebookNode) -> str:
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", ""))
            for value in out.get("data", {}).values():
                text.append(value if isinstance(value, str) else "")
    return "\n".join(text)


def test_notebooks_have_no_committed_outputs() -> None:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


def test_start_here_runs_and_shows_every_kind_of_reply(tmp_path: Path) -> None:
    nb = execute("01-start-here.ipynb", "WORKERS = 1", tmp_path)
    text = outputs(nb)
    for expected in ("REQ received: {'code': 'OK'", "the second send failed: Operation cannot "
                     "be accomplished in current state", "Don Quijote de la Mancha", "Loan done",
                     "UNAVAILABLE", "NOT_LOANED", "BAD_REQUEST", "uptime_s"):
        assert expected in text, expected


@pytest.mark.parametrize(("parameters", "tab"), [("", "Consulta ISBN"),
                                                ('LANG = "en"', "Query by ISBN")])
def test_forms_notebook_builds_its_widgets_in_the_language_asked(
        tmp_path: Path, parameters: str, tab: str) -> None:
    nb = execute("02-forms.ipynb", parameters, tmp_path)
    assert "application/vnd.jupyter.widget-view+json" in str(nb.cells)
    assert tab in str(nb.metadata.get("widgets", {}))  # the saved state of the tabs


def test_latency_notebook_runs_small(tmp_path: Path) -> None:
    nb = execute("03-latency.ipynb", f"CLIENTS = [1, 4]\nWORKERS = [0, 1]\nSECONDS = 1\n"
                 f"BOOKS = 200\nROUNDS = 1\nOUT = {str(tmp_path)!r}", tmp_path)
    text = outputs(nb)
    for title in ("Against the transport's limit", "Latency against clients",
                  "Throughput against workers"):
        assert title in text
    assert "What the runs show." in text and "image/png" in str(nb.cells)
    assert "server_cpu_us" in text and "kit broker + 2 echo workers" in text


def test_concurrency_notebook_runs_small(tmp_path: Path) -> None:
    nb = execute("04-concurrency.ipynb", f"CLIENTS = 8\nSECONDS = 2\nROUNDS = 1\n"
                 f"OUT = {str(tmp_path)!r}",
                 tmp_path)
    text = outputs(nb)
    assert "with the lock: 400 loans recorded, the file counts 400 (0 lost)" in text
    assert "The lost-update experiment" in text and "What the runs show." in text
    assert "without the lock:" in text and "with the lock: 0" in text
    # the live counter saw every change the observed run's feed check counted
    live = re.search(r"seen live: ([\d,]+) loans and ([\d,]+) returns", text)
    feed = re.search(r"feed check: ([\d,]+) changes, [\d,]+ acknowledged writes found in it, "
                     r"0 finding\(s\); the verifier: 0 violation", text)
    assert live and feed, text[-2000:]
    seen = sum(int(n.replace(",", "")) for n in live.groups())
    assert seen == int(feed.group(1).replace(",", "")) > 0


def test_many_machines_notebook_runs_a_local_cluster(tmp_path: Path) -> None:
    pytest.importorskip("ipyparallel")
    nb = execute("05-many-machines.ipynb", f"ENGINES = 2\nCLIENTS = 8\nSECONDS = 1\n"
                 f"OUT = {str(tmp_path)!r}", tmp_path)
    text = outputs(nb)
    assert "uncertainty_ms" in text and "offset_ms" in text  # each engine's part and clock
    summaries = [p for p in tmp_path.glob("*/summary.json")]
    engines = sorted(json.loads(p.read_text()).get("engines", 0) for p in summaries)
    assert engines == [0, 2]
    assert all(json.loads(p.read_text())["violations"] == 0 for p in summaries)


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_each_notebook_has_a_tagged_parameters_cell(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)


def test_grading_notebook_grades_its_two_demonstration_groups(tmp_path: Path) -> None:
    nb = execute("06-grade-servers.ipynb", f"OUT = {str(tmp_path)!r}", tmp_path)
    text = outputs(nb)
    assert "== grupo-con-lock: every check passed" in text, text[-3000:]
    assert "== grupo-sin-lock:" in text and "concurrency fight clean: " in text
    assert "image/png" in str(nb.cells) and (tmp_path / "README.md").exists()


def test_faults_notebook_shows_each_fault_and_catches_duplicates_without_ids(
        tmp_path: Path) -> None:
    nb = execute("07-faults.ipynb", f"CLIENTS = 6\nHOT = 2\nSECONDS = 3\nOUT = {str(tmp_path)!r}",
                 tmp_path)
    text = outputs(nb)
    for fault in ("kill-worker@2 at", "stop-server@2+1.5 at", "partition@2+1 at",
                  "kill-server@1 at"):
        assert fault in text, text[-3000:]
    verdicts = re.findall(r"verdict: (clean|NOT CLEAN)", text)
    # calm, killed, paused without and with retries, cut, duplicated, the student's own
    assert len(verdicts) == 7, verdicts
    assert verdicts[5] == "NOT CLEAN" and verdicts[4] == "clean" and verdicts[3] == "clean"
    assert str(nb.cells).count("image/png") >= 7
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", out


@pytest.fixture
def group_server(start_server, tmp_path: Path):
    """A class-style server of the tests' own (tests/class_servers.py) on a copy of the
    class's data, as a group would run theirs: (the server, its catalog file)."""
    import shutil

    from tests.class_servers import command
    from tests.helpers import CLASS_DB

    def start(kind: str, workers: int) -> tuple:
        db = tmp_path / f"{kind}.json"
        shutil.copy(CLASS_DB, db)
        return start_server(db, command=command(kind, db, workers)), db

    return start


def aimed_at(server, db: Path, name: str, tmp_path: Path) -> str:
    """The parameters that point a notebook at a group's server in the class protocol."""
    return (f"OUT = {str(tmp_path / 'runs')!r}\nENDPOINT = {server.endpoint!r}\n"
            f"DIALECT = 'class'\nCATALOG = {str(db)!r}\nNAME = {name!r}")


def test_latency_notebook_measures_a_group_server(tmp_path: Path, group_server) -> None:
    server, db = group_server("correct", 0)
    nb = execute("03-latency.ipynb", "CLIENTS = [1, 4]\nSECONDS = 1\nROUNDS = 1\n"
                 + aimed_at(server, db, "grupo-7", tmp_path), tmp_path)
    text = outputs(nb)
    assert "Latency against clients" in text and "grupo-7" in text
    assert "Throughput against workers" not in text and "kit broker" not in text


def test_concurrency_notebook_fights_a_group_server(tmp_path: Path, group_server) -> None:
    server, db = group_server("nolock", 2)
    nb = execute("04-concurrency.ipynb", "CLIENTS = 8\nSECONDS = 2\nROUNDS = 1\nHOT = 2\n"
                 + aimed_at(server, db, "grupo-8", tmp_path), tmp_path)
    text = outputs(nb)
    assert "grupo-8: NOT CLEAN" in text and "anomalies" in text
