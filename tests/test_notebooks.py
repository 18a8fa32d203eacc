"""Every notebook, executed top to bottom in a real Jupyter kernel, on small parameters."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from tests.notebook_run import NOTEBOOKS, assert_no_error_or_warning, execute, outputs

# its own limit, above the deadlines inside it (300 s), so that those are what fail
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]



def test_notebooks_have_no_committed_outputs() -> None:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


# what each language's notebook 01 must show: the server's messages and the cards' labels
START_HERE = {"es": ("Préstamo exitoso", "Prestatario", "Fecha de devolución"),
              "en": ("Loan done", "Borrower", "Due")}


@pytest.mark.parametrize("lang", ["es", "en"])
def test_start_here_runs_and_shows_every_kind_of_reply(tmp_path: Path, lang: str) -> None:
    nb = execute("01-start-here.ipynb", "WORKERS = 1", tmp_path, lang)
    text = outputs(nb)
    for expected in ("REQ received: {'code': 'OK'", "the second send failed: Operation cannot "
                     "be accomplished in current state", "Don Quijote de la Mancha",
                     "UNAVAILABLE", "NOT_LOANED", "BAD_REQUEST", "uptime_s",
                     "processes serving: 1 of 1", *START_HERE[lang]):
        assert expected in text, expected
    assert_no_error_or_warning(nb)


@pytest.mark.parametrize(("lang", "tab"), [("es", "Consulta ISBN"), ("en", "Query by ISBN")])
def test_forms_notebook_builds_its_widgets_in_the_language_asked(
        tmp_path: Path, lang: str, tab: str) -> None:
    nb = execute("02-forms.ipynb", "", tmp_path, lang)
    assert "application/vnd.jupyter.widget-view+json" in str(nb.cells)
    assert tab in str(nb.metadata.get("widgets", {}))  # the saved state of the tabs


def test_latency_notebook_runs_small(tmp_path: Path) -> None:
    nb = execute("03-latency.ipynb", f"CLIENTS = [1, 4]\nWORKERS = [0, 1]\nSECONDS = 1\n"
                 f"BOOKS = 200\nROUNDS = 1\nOUT = {str(tmp_path)!r}", tmp_path)
    text = outputs(nb)
    for title in ("Frente al límite del transporte", "Latencia según los clientes",
                  "Rendimiento según los trabajadores"):
        assert title in text
    assert "Lo que muestran las ejecuciones." in text and "image/png" in str(nb.cells)
    assert "CPU del servidor (µs/petición)" in text
    assert "broker del kit + 2 trabajadores eco" in text
    assert "ejecución 4/4 terminada" in text  # compare's progress: 4 rows, 1 round
    # a starved limit round on a busy machine gives 10× or more, or no ratio at all (said so)
    assert re.search(r"El servidor del kit( va a \d+\.\d\d× el límite del transporte|: sin "
                     r"razón)", text)
    assert "NaN" not in text and "server_cpu_us" not in text
    assert_no_error_or_warning(nb)


def test_concurrency_notebook_runs_small(tmp_path: Path) -> None:
    nb = execute("04-concurrency.ipynb", f"CLIENTS = 8\nSECONDS = 2\nROUNDS = 1\n"
                 f"OUT = {str(tmp_path)!r}",
                 tmp_path)
    text = outputs(nb)
    assert "con cerrojo: 400 préstamos apuntados, el archivo cuenta 400 (0 perdidos)" in text
    assert "El experimento de la actualización perdida" in text
    assert "Lo que muestran las ejecuciones." in text and "anomalías por ronda" in text
    assert "ejecución 2/2 terminada" in text
    assert re.search(r"sin el cerrojo: [1-9][\d]* anomalías en 1 rondas \[\d+\]; con el "
                     r"cerrojo: 0\.", text), text[-3000:]
    assert "prestatario" in text and "enviada (ms)" in text  # the finding's operations
    # the live counter saw every change the observed run's feed check counted
    live = re.search(r"visto en vivo: ([\d,]+) préstamos y ([\d,]+) devoluciones", text)
    feed = re.search(r"el feed: ([\d,]+) cambios, [\d,]+ escrituras confirmadas encontradas "
                     r"en él, 0 hallazgo\(s\); el verificador: 0 anomalía", text)
    assert live and feed, text[-2000:]
    seen = sum(int(n.replace(",", "")) for n in live.groups())
    assert seen == int(feed.group(1).replace(",", "")) > 0
    assert_no_error_or_warning(nb)


def test_many_machines_notebook_runs_a_local_cluster(tmp_path: Path) -> None:
    pytest.importorskip("ipyparallel")
    nb = execute("05-many-machines.ipynb", f"ENGINES = 2\nCLIENTS = 8\nSECONDS = 1\n"
                 f"OUT = {str(tmp_path)!r}", tmp_path)
    text = outputs(nb)
    assert "incertidumbre (ms)" in text and "desfase del reloj (ms)" in text  # each engine's
    assert "uncertainty_ms" not in text  # part and clock, in words
    assert "Todo corrió en esta máquina de" in text and "anomalías" in text  # a header
    assert_no_error_or_warning(nb)
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
    assert "== grupo-con-lock: pasó todas las comprobaciones" in text, text[-3000:]
    assert "grupo-sin-lock: comprobación del protocolo" in text  # the grader's progress
    assert "== grupo-sin-lock:" in text and "pelea concurrente limpia: " in text
    assert "anomalías: actualizaciones perdidas o duplicadas" in text  # the reasons, in Spanish
    assert "image/png" in str(nb.cells) and (tmp_path / "README.md").exists()
    assert (tmp_path / "README.md").read_text().startswith("# Informe de calificación")
    assert "peticiones/s con 16 clientes" in text
    assert_no_error_or_warning(nb)


def test_faults_notebook_shows_each_fault_and_catches_duplicates_without_ids(
        tmp_path: Path) -> None:
    nb = execute("07-faults.ipynb", f"CLIENTS = 6\nHOT = 2\nSECONDS = 3\nOUT = {str(tmp_path)!r}",
                 tmp_path)
    text = outputs(nb)
    for fault in ("kill-worker@2 a los", "stop-server@2+1.5 a los", "partition@2+1 a los",
                  "kill-server@1 a los"):
        assert fault in text, text[-3000:]
    verdicts = re.findall(r"veredicto: (limpio|NO limpio)", text)
    # calm, killed, paused without and with retries, cut, duplicated, the student's own
    assert len(verdicts) == 7, verdicts
    assert verdicts[5] == "NO limpio" and verdicts[4] == "limpio" and verdicts[3] == "limpio"
    assert str(nb.cells).count("image/png") >= 7
    assert "reintentadas" in text and "el rendimiento volvió al 90%" in text
    # the side-by-side table says the same verdicts as the runs did, in one sentence
    dirty = [n for n, v in zip(("1", "2", "3a", "3b", "4a", "4b", "5"), verdicts, strict=True)
             if v == "NO limpio"]
    assert f"Limpias: {7 - len(dirty)} de 7. No limpias: {', '.join(dirty)}." in text
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
    assert "Latencia según los clientes" in text and "grupo-7" in text
    assert "Rendimiento según los trabajadores" not in text and "kit broker" not in text


def test_concurrency_notebook_fights_a_group_server(tmp_path: Path, group_server) -> None:
    server, db = group_server("nolock", 2)
    nb = execute("04-concurrency.ipynb", "CLIENTS = 8\nSECONDS = 2\nROUNDS = 1\nHOT = 2\n"
                 + aimed_at(server, db, "grupo-8", tmp_path), tmp_path)
    text = outputs(nb)
    assert "grupo-8: NO limpio" in text and "anomalía(s)" in text, text[:1500]


def test_transports_notebook_measures_and_verifies_every_transport(tmp_path: Path) -> None:
    nb = execute("08-transports.ipynb", f"CLIENTS = [2]\nSECONDS = 0.5\nROUNDS = 1\n"
                 f"OUT = {str(tmp_path)!r}", tmp_path)
    text = outputs(nb)
    for server in ("servidor ZeroMQ, broker + 2 trabajadores", "servidor gRPC, 2 procesos",
                   "servidor HTTP, 2 procesos", "pasarela Flask -> servidor ZeroMQ"):
        assert re.search(rf"veredicto, {re.escape(server)}[^:]*: limpio", text), server
    assert "ZeroMQ, gRPC y HTTP" in text and "image/png" in str(nb.cells)
    assert "peticiones/s con 2 clientes" in text and "su propio eco" in text
    assert "ejecución 10/10 terminada" in text
    assert_no_error_or_warning(nb)


def test_the_forms_notebook_exported_to_html_shows_what_the_student_did(tmp_path: Path) -> None:
    """A loan made in the forms, then the notebook saved without its widgets' state (as
    JupyterLab saves it by default) and exported: the page shows the loan's card, escaped."""
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.read(NOTEBOOKS / "02-forms.ipynb", as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "forms = LibraryForms" in c.source)
    loan = ('form = forms.loan_isbn\nform.fields["isbn"].value = "9788437604947"\n'
            'form.fields["borrower"].value = "Ana <b>López</b>"\nform.submit().result(20)')
    nb.cells = [*nb.cells[:at + 1], nbformat.v4.new_code_cell(loan),
                *(c for c in nb.cells[at + 1:] if "forms.close()" in c.source)]
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    nb.metadata.pop("widgets", None)
    page, _ = HTMLExporter().from_notebook_node(nb)
    assert "Préstamo exitoso" in page and "Ana &lt;b&gt;López&lt;/b&gt;" in page
    assert "<b>López</b>" not in page
