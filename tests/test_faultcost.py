"""The report's "What a fault costs" (libsrv_bench.faultcost): its words come from the runs'
figures, and change when they do."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from libsrv_bench.faultcost import fault_lines, fault_sections

pytestmark = pytest.mark.fast


def write_run(folder: Path, faults: list[dict], clean: bool = True) -> Path:
    """A run folder as `run_experiment` leaves it, with only what the section reads."""
    folder.mkdir(parents=True)
    summary = {"name": folder.name, "clean": clean, "violations": 0 if clean else 3,
               "command": f"python -m libsrv_bench run --label {folder.name}",
               "faults": faults}
    (folder / "summary.json").write_text(json.dumps(summary))
    t = [n / 10 for n in range(100)]
    rates = [0.0 if 3.0 <= x < 3.4 else 1000.0 for x in t]
    pd.DataFrame({"t_s": t, "rate_per_s": rates}).to_csv(folder / "timeline.csv", index=False)
    return folder


def fault(kind: str, text: str, *, retried: int, recovered: float | None,
          duration: float = 0.0, timeouts: int = 0, error: str = "") -> dict:
    return {"kind": kind, "fault": text, "at": 3.0, "duration": duration, "at_s": 3.0,
            "pid": 1, "error": error, "recovered_after_s": recovered, "timeouts": timeouts,
            "retried": retried, "internal": 0}


def test_no_run_with_faults_no_section(tmp_path: Path) -> None:
    write_run(tmp_path / "plain", [])
    assert fault_sections([tmp_path]) == []


def test_the_words_are_the_runs_figures(tmp_path: Path) -> None:
    write_run(tmp_path / "a", [fault("kill-worker", "kill-worker@3", retried=2, recovered=0.4),
                               fault("partition", "partition@3+1", retried=7, timeouts=1,
                                     recovered=None, duration=1.0)])
    (section,) = fault_sections([tmp_path])
    plt.close(section.figure)
    assert "A killed worker cost 2 request(s): 2 retried" in section.conclusion
    assert "back to 90% of its level before after 0.4 s" in section.conclusion
    assert "A network partition cost 8 request(s): 7 retried, 1 given up" in section.conclusion
    assert "did not come back" in section.conclusion
    assert "Every one of the 1 run(s) with faults was clean" in section.conclusion
    assert list(section.table["fault"]) == ["kill-worker@3", "partition@3+1"]
    assert len(section.figure.axes) == 2  # one panel per kind
    (seccion,) = fault_sections([tmp_path], "es")
    plt.close(seccion.figure)
    assert seccion.title == "Lo que cuesta un fallo"
    assert "Un trabajador matado costó 2 petición(es): 2 reintentadas" in seccion.conclusion
    assert "Una partición de red costó 8 petición(es): 7 reintentadas, 1 abandonadas" in \
        seccion.conclusion
    assert "Las 1 ejecución(es) con fallos fueron limpias" in seccion.conclusion
    assert list(seccion.table["ejecuciones limpias"]) == ["1 de 1", "1 de 1"]


def test_several_runs_give_a_median_and_an_unclean_run_is_named(tmp_path: Path) -> None:
    for name, retried in (("r0", 1), ("r1", 5), ("r2", 9)):
        write_run(tmp_path / name, [fault("kill-worker", "kill-worker@3", retried=retried,
                                          recovered=0.5)], clean=name != "r2")
    write_run(tmp_path / "failed", [fault("kill-feed", "kill-feed@3", retried=0,
                                          recovered=None, error="no feed")])
    (section,) = fault_sections([tmp_path])
    plt.close(section.figure)
    assert "a median of 5 request(s) over 3 runs (from 1 to 9): 5 (1-9) retried" in \
        section.conclusion
    assert "1 of 3 run(s) with faults were not clean (r2)" in section.conclusion
    assert list(section.table["fault"]) == ["kill-worker@3"]  # kill-feed not carried out
    assert list(section.table["runs clean"]) == ["2 of 3"]
    assert list(section.table["back to 90% after (s)"]) == ["0.5"]


def test_a_runs_fault_lines_in_either_language_carry_its_figures() -> None:
    summary = {"faults": [fault("kill-worker", "kill-worker@3", retried=4, recovered=0.7,
                                timeouts=1),
                          fault("partition", "partition@5+1", retried=0, recovered=None,
                                error="no fault proxy")]}
    english, spanish = fault_lines(summary), fault_lines(summary, "es")
    assert english[0] == ("fault kill-worker@3 at 3 s (PID 1): throughput back to 90% of before "
                          "after 0.7 s; 1 timeouts, 4 retried, 0 INTERNAL")
    assert spanish[0] == ("fallo kill-worker@3 a los 3 s (PID 1): el rendimiento volvió al 90% "
                          "del de antes tras 0.7 s; 1 tiempos agotados, 4 reintentadas, "
                          "0 INTERNAL")
    assert spanish[1] == "fallo partition@5+1: no se hizo: no fault proxy"


def test_a_fault_that_cost_nothing_is_said_so_in_either_language(tmp_path: Path) -> None:
    write_run(tmp_path / "a", [fault("kill-worker", "kill-worker@3", retried=0, recovered=0.4)])
    (english,) = fault_sections([tmp_path])
    (spanish,) = fault_sections([tmp_path], "es")
    for section in (english, spanish):
        plt.close(section.figure)
    assert english.conclusion.startswith("A killed worker cost no request: 0 retried")
    assert spanish.conclusion.startswith("Un trabajador matado no costó ninguna petición: "
                                         "0 reintentadas")
