"""The lab notebooks: one source each makes both languages and both variants, the students'
copies hold no solution, and what the notebooks say about a run comes from its numbers."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from libsrv_bench.lessons import (
    CHECK_NAMES,
    FINDING_NAMES,
    check_name,
    cost_rows_read,
    cost_sentences,
    engine_rows,
    fault_run_rows,
    feed_verdict,
    finding_name,
    first_finding,
    lock_verdict,
    ops_rows,
    target_verdict,
)
from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import notebooks as lab_notebooks

pytestmark = pytest.mark.fast

SOURCE = """%% md es
# Título
%% md en
# Title
%% code parameters
N = 1
LANG = "es"
OUT = "../report/x"
%% code
print(N)
%% md es
## Respuestas
%% md answer es
%% md en
## Answers
%% md answer en
%% md solution es
La solución.
%% md solution en
The solution.
"""


def texts(notebook: dict) -> list[str]:
    return ["".join(cell["source"]) for cell in notebook["cells"]]


def test_each_language_gets_its_own_cells_and_the_shared_ones() -> None:
    cells = lab_notebooks.parse(SOURCE)
    es, en = (texts(lab_notebooks.build(cells, lang)) for lang in ("es", "en"))
    assert es[0] == "# Título" and en[0] == "# Title"
    assert "print(N)" in es and "print(N)" in en
    assert 'LANG = "es"' in es[1] and 'LANG = "en"' in en[1]
    # notebooks/en/ is one folder deeper: its relative paths gain a level
    assert '"../report/x"' in es[1] and '"../../report/x"' in en[1]


def test_a_student_variant_has_no_solution_and_a_teacher_variant_has_it() -> None:
    cells = lab_notebooks.parse(SOURCE)
    student = lab_notebooks.build(cells, "es")
    teacher = lab_notebooks.build(cells, "es", teacher=True)
    assert "La solución." not in json.dumps(student)
    assert "La solución." in texts(teacher) and "The solution." not in texts(teacher)
    answer = [c for c in student["cells"] if "answer" in c["metadata"].get("tags", [])]
    assert ["".join(c["source"]) for c in answer] == ["*(escribe aquí)*"]


@pytest.mark.parametrize(("bad", "says"), [("text\n%% md\nx", "before the first"),
                                          ("%% cell\nx", "'md' or 'code'"),
                                          ("%% md fr\nx", "unknown tag 'fr'")])
def test_a_malformed_source_is_refused_with_where(bad: str, says: str) -> None:
    with pytest.raises(lab_notebooks.SourceError, match=says):
        lab_notebooks.parse(bad, "x.nb")


def test_the_committed_notebooks_are_what_their_sources_make() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "notebooks.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    sources = sorted(p.stem for p in (ROOT / "notebooks" / "source").glob("*.nb"))
    assert sources == sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))


def test_no_committed_notebook_holds_a_solution() -> None:
    for path in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        for cell in notebook["cells"]:
            assert "solution" not in cell["metadata"].get("tags", []), path
            text = "".join(cell["source"])
            assert "(profesor)" not in text and "(teacher)" not in text


def test_the_teacher_variants_add_only_solutions(tmp_path: Path) -> None:
    lab_notebooks.main(["--teacher", str(tmp_path)])
    made = sorted(tmp_path.rglob("*.ipynb"))
    assert made and len(made) == len(list((ROOT / "notebooks").rglob("*.ipynb")))
    solutions = 0
    for path in made:
        student = json.loads((ROOT / "notebooks" / path.relative_to(tmp_path)).read_text())
        teacher = json.loads(path.read_text())
        kept = [c for c in teacher["cells"] if "solution" not in c["metadata"].get("tags", [])]
        assert texts({"cells": kept}) == texts(student)
        solutions += len(teacher["cells"]) - len(kept)
    assert solutions >= 3  # 01, 02 and 04 carry one each at least


def test_collect_reads_back_what_a_student_wrote(tmp_path: Path) -> None:
    notebook = lab_notebooks.build(lab_notebooks.parse(SOURCE), "es")
    filled = copy.deepcopy(notebook)
    answer = next(c for c in filled["cells"] if "answer" in c["metadata"].get("tags", []))
    answer["source"] = "Sin cerrojo se pierden préstamos."
    (tmp_path / "ana.ipynb").write_text(json.dumps(filled))
    (tmp_path / "blanco.ipynb").write_text(json.dumps(notebook))
    page = lab_notebooks.collect([tmp_path / "ana.ipynb", tmp_path / "blanco.ipynb"])
    assert "## Respuestas\n\nSin cerrojo se pierden préstamos." in page
    assert page.count("(sin respuesta)") == 1


def test_every_finding_kind_is_named_in_both_languages() -> None:
    for kind, names in FINDING_NAMES.items():
        assert set(names) == {"es", "en"}, kind
    assert "actualización perdida" in finding_name("double-loan", "es")
    assert "lost update" in finding_name("final-state", "en")
    assert finding_name("something-new", "es") == "something-new"


def test_the_lock_verdict_follows_the_numbers() -> None:
    caught = lock_verdict([120, 7], [0, 0], "es")
    assert "127 anomalías en 2 rondas [120, 7]; con el cerrojo: 0." in caught
    assert "evita las actualizaciones perdidas" in caught
    missed = lock_verdict([0], [0], "en")
    assert "0 anomalies over 1 rounds" in missed and "no race this time" in missed
    assert lock_verdict([3], [1], "en") != lock_verdict([3], [0], "en")


def test_a_finding_is_named_and_its_operations_read_as_a_table() -> None:
    verdicts = [{"details": []}, {"details": [{"kind": "double-loan", "detail": "client 3 …",
                                               "ops": [
        {"client": 3, "op": "loan", "status": "ok", "saw": None, "invoke_ms": 10.04,
         "complete_ms": 12.56, "borrower": "bench-3"},
        {"client": 5, "op": "query", "status": "ok", "saw": "lent", "invoke_ms": 11.0,
         "complete_ms": None, "borrower": None}]}]}]
    assert first_finding(verdicts, "es").startswith("préstamo doble (una actualización perdida")
    assert first_finding([{"details": []}], "en").startswith("none this round")
    rows = ops_rows(verdicts[1]["details"][0]["ops"], "es")
    assert rows[0] == {"cliente": 3, "operación": "préstamo", "prestatario": "bench-3",
                       "respuesta": "hecho", "vio el libro": "—", "enviada (ms)": 10.0,
                       "respondida (ms)": 12.6}
    assert rows[1]["vio el libro"] == "prestado" and rows[1]["respondida (ms)"] == "—"


def test_a_target_and_a_feed_are_said_from_their_summaries() -> None:
    clean = {"target": "grupo-1", "clean": True, "requests": 12345}
    assert target_verdict(clean, "es") == "grupo-1: limpio (12,345 peticiones, ninguna anomalía)"
    dirty = {"target": "grupo-2", "clean": False, "not_clean": ["3 anomalies", "errors 9%"]}
    assert target_verdict(dirty, "en") == "grupo-2: NOT CLEAN: 3 anomalies; errors 9%"
    summary = {"violations": 0, "feed": {"changes": 900, "acknowledged_in_feed": 880,
                                         "violations": 0}}
    assert "900 cambios, 880 escrituras" in feed_verdict(summary, "es")


def compare_rows(echo_ratio: float, busy: float) -> list[dict]:
    """compare.medians rows as a run of the kit's server gives them (numbers for the test)."""
    nan = float("nan")
    return [
        {"name": "reference", "throughput": 10000.0, "p99_ms": 2.0, "server_cpu_us": 60.0,
         "load_cpu_us": 90.0, "machine_busy": busy, "throughput_ratio": nan},
        {"name": "bare REP echo", "throughput": 10000 * echo_ratio, "p99_ms": 1.0,
         "server_cpu_us": 20.0, "load_cpu_us": 80.0, "machine_busy": busy,
         "throughput_ratio": echo_ratio, "ratio_spread": "1.30-1.50"},
        {"name": "kit broker + 2 echo workers", "throughput": 6000.0, "p99_ms": 3.0,
         "server_cpu_us": 140.0, "load_cpu_us": 95.0, "machine_busy": busy,
         "throughput_ratio": 0.6, "ratio_spread": "0.55-0.62"},
        {"name": "server", "throughput": 4800.0, "p99_ms": 4.2, "server_cpu_us": 217.4,
         "load_cpu_us": 100.0, "machine_busy": busy, "throughput_ratio": 0.48,
         "ratio_spread": "0.44-0.57"},
    ]


def test_the_cost_table_has_words_and_units_and_no_nan() -> None:
    table = cost_rows_read(compare_rows(1.43, 0.8), "es")
    assert table[0]["configuración"].startswith("límite del transporte")
    assert table[0]["× el límite"] == "1" and table[0]["rango en las rondas"] == "—"
    assert table[2]["configuración"] == "broker del kit + 2 trabajadores eco"
    assert table[3]["CPU del servidor (µs/petición)"] == "217"
    assert table[3]["máquina ocupada"] == "80%"
    assert "nan" not in json.dumps(table, ensure_ascii=False).lower()


def test_the_cost_sentences_change_with_the_numbers() -> None:
    fast_echo = cost_sentences(compare_rows(1.43, 0.95), "es")
    slow_echo = cost_sentences(compare_rows(0.93, 0.75), "es")
    assert fast_echo[0] == ("El servidor del kit va a 0.48× el límite del transporte (de "
                            "0.44-0.57 según la ronda). Cada petición le cuesta 217 µs de CPU, "
                            "frente a 60 µs del límite: esa diferencia es lo que cuesta el "
                            "servicio de biblioteca.")
    assert "más rápido que el límite (1.43×)" in fast_echo[1]
    assert "no supera al límite (0.93×)" in slow_echo[1]
    assert "ocupada un 95%" in fast_echo[2] and "casi llena" in fast_echo[2]
    assert "ocupada un 75%" in slow_echo[2] and "no del todo llena" in slow_echo[2]
    assert "100 µs por petición" in fast_echo[3] and "un 32%" in fast_echo[3]
    english = cost_sentences(compare_rows(1.43, 0.95), "en")
    assert english[0].startswith("The kit's server runs at 0.48× the transport's limit")


def test_a_ratio_the_run_could_not_measure_is_said_not_dropped() -> None:
    rows = compare_rows(1.43, 0.95)
    rows[3] = {**rows[3], "throughput_ratio": float("nan"), "ratio_spread": "nan-nan"}
    said = cost_sentences(rows, "en")
    assert said[0].startswith("The kit's server: no ratio to the limit")
    assert "El servidor del kit: sin razón" in cost_sentences(rows, "es")[0]


def test_every_grading_check_has_its_spanish_name() -> None:
    """The checks `grade` makes, read from its source, each named in CHECK_NAMES."""
    source = (ROOT / "libsrv_bench" / "grade.py").read_text(encoding="utf-8")
    names = set(re.findall(r'(?:_check|expect)\(\s*"([^"]+)"', source))
    assert len(names) >= 12
    assert names <= set(CHECK_NAMES), names - set(CHECK_NAMES)
    assert check_name("concurrency fight clean", "es") == "pelea concurrente limpia"
    assert check_name("concurrency fight clean", "en") == "concurrency fight clean"


def test_the_calibration_is_said_and_a_throttled_reference_is_flagged() -> None:
    rows = [{"name": "reference", "throughput": 10_000.0, "server_cpu_us": 120.0},
            {"name": "reference, lean generator", "throughput": 8_000.0,
             "generator_ratio": 1.25, "ratio_spread": "1.10-1.40", "lean_clients": 64},
            {"name": "server", "throughput": 4_000.0, "throughput_ratio": 0.4,
             "ratio_spread": "0.35-0.45", "server_cpu_us": 280.0}]
    said = cost_sentences(rows, "es", cores=2)
    assert "Calibración: el generador del kit sacó del límite 1.25×" in said[-1]
    assert "cada uno de los 64 procesos del generador independiente espera su turno en 2 " \
        "núcleos" in said[-1]
    assert "Python" not in said[-1]
    rows[1]["generator_ratio"] = 0.8
    said = cost_sentences(rows, "en", cores=2)
    assert "got only 0.80×" in said[-1] and "overstated" in said[-1]
    rows[1]["lean_loop"] = "python"  # no compiler: the calibration itself is held back
    said = cost_sentences(rows, "en", cores=2)
    assert "ran in Python" in said[-1] and "falls short" in said[-1]


def test_each_engines_part_reads_as_a_table_with_units() -> None:
    runs = [{"engine": 0, "host": "pc1", "clients": 20, "requests": 4362,
             "throughput": 1454.04, "offset_ms": -0.2311, "uncertainty_ms": 2.351,
             "status": "ok", "reason": ""},
            {"engine": 1, "host": "pc2", "clients": 20, "requests": 10, "throughput": 3.0,
             "offset_ms": None, "uncertainty_ms": None, "status": "missing",
             "reason": "lost its network"}]
    first, second = engine_rows(runs, "es")
    assert first["peticiones/s"] == "1,454" and first["desfase del reloj (ms)"] == -0.23
    assert first["motivo"] == "—" and first["estado"] == "bien"
    assert second["estado"] == "falta" and second["incertidumbre (ms)"] == "—"
    assert set(engine_rows(runs, "en")[0]) >= {"clock offset (ms)", "uncertainty (ms)"}


def test_fault_runs_side_by_side_follow_their_summaries() -> None:
    calm = {"config": {"faults": [], "retries": 3}, "answered": 1200, "retried": 0,
            "timeouts": 0, "violations": 0, "clean": True}
    dup = {"config": {"faults": ["duplicate@0.5+4:50%"], "retries": 0, "no_ids": True},
           "answered": 900, "retried": 0, "timeouts": 0, "violations": 12, "clean": False}
    rows, said = fault_run_rows({"1": calm, "4b": dup}, "es")
    assert said == "Limpias: 1 de 2. No limpias: 4b."
    assert rows[1]["ids"] == "no" and rows[1]["anomalías"] == 12
    assert rows[0]["fallos"] == "ninguno" and rows[0]["veredicto"] == "limpio"
    _, said = fault_run_rows({"1": calm}, "en")
    assert said.startswith("All 1 runs were clean")
