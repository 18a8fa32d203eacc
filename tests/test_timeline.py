"""A run over time (libsrv_bench.timeline): each interval's answered, failed and lost requests
and latency, from a history built here; and every run folder gets its timeline."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from libsrv_bench.runner import RunConfig, run_experiment
from libsrv_bench.timeline import timeline_frame

pytestmark = pytest.mark.fast


def _history(rows: list[tuple[float, float | None, str]]) -> pd.DataFrame:
    """(sent at ms, answered at ms or None, code) as `records_frame` has them."""
    frame = pd.DataFrame(rows, columns=["send_ms", "recv_ms", "code"])
    frame["intended_ms"] = frame["send_ms"]
    frame["latency_ms"] = frame["recv_ms"] - frame["intended_ms"]
    frame["service_ms"] = frame["recv_ms"] - frame["send_ms"]
    return frame


def test_each_interval_counts_what_was_answered_refused_and_lost_in_it() -> None:
    rows = [(0, 10, "OK"), (20, 50, "OK"), (40, 90, "INTERNAL"),  # interval 0
            (95, 130, "OK"),  # answered in interval 1
            (150, None, "TIMEOUT"),  # sent in interval 1, never answered
            (210, 390, "OK")]  # a slow one, answered in interval 3
    table = timeline_frame(_history(rows), interval_ms=100)
    assert list(table["t_s"]) == [0.0, 0.1, 0.2, 0.3]
    assert list(table["answered"]) == [3, 1, 0, 1]
    assert list(table["errors"]) == [1, 0, 0, 0]
    assert list(table["timeouts"]) == [0, 1, 0, 0]
    assert list(table["rate_per_s"]) == [30, 10, 0, 10]
    assert table["max_ms"].iloc[0] == 50 and table["p50_ms"].iloc[0] == 30
    assert math.isnan(table["p50_ms"].iloc[2])  # nothing answered: no latency, not zero
    assert table["max_ms"].iloc[3] == 180


def test_every_run_writes_its_timeline(tmp_path: Path) -> None:
    outcome = run_experiment(RunConfig(workers=0, books=50, clients=2, requests=300,
                                       warmup=0), tmp_path, progress=False, timeline_png=True)
    table = pd.read_csv(outcome.folder / "timeline.csv")
    assert table["answered"].sum() == outcome.summary["requests"]
    assert (outcome.folder / "timeline.png").stat().st_size > 5_000


def test_the_timeline_figure_speaks_spanish_when_asked() -> None:
    import matplotlib.pyplot as plt

    from libsrv_bench.timeline import timeline_figure

    table = pd.DataFrame({"t_s": [0.0, 0.1, 0.2], "rate_per_s": [10.0, 0.0, 10.0],
                          "errors": [0, 1, 0], "timeouts": [0, 0, 0],
                          "p50_ms": [1.0, 2.0, 1.0], "p99_ms": [2.0, 3.0, 2.0],
                          "max_ms": [3.0, 4.0, 3.0]})
    figure = timeline_figure(table, [(0.1, "kill-worker@0.1", 0.0)], "", "es")
    rate, latency = figure.axes
    assert rate.get_ylabel() == "peticiones / s"
    assert latency.get_xlabel() == "segundos desde el inicio (intervalos de 100 ms)"
    assert [t.get_text() for t in rate.get_legend().get_texts()] == [
        "respondidas / s", "errores + tiempos agotados / s"]
    plt.close(figure)


def test_a_long_schedule_is_titled_in_words_not_by_its_cut_folder_name() -> None:
    from libsrv_bench.settings import NAME_LIMIT, run_name
    from libsrv_bench.timeline import run_title

    config = RunConfig(faults=tuple(f"kill-worker@{n}" for n in range(1, 30)))
    assert len(run_name(config)) == NAME_LIMIT  # cut, with a hash
    assert run_title(config) == "journal, 2 workers, 16 clients, read-mostly"
    assert run_title(config, "es").startswith("journal, 2 trabajadores")
    assert run_title(RunConfig(label="demo-faults")) == "demo-faults"
