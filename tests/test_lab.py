"""The lab report's arithmetic and figures, on run folders written here with known figures.

Each folder has what a real run writes (summary, latency histogram, verdict), so the report
reads them exactly as it reads a real run; the real runs are in test_bench and the notebooks.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from libsrv_bench.cli import build_parser
from libsrv_bench.lab import sections
from libsrv_bench.load import new_histogram
from libsrv_bench.report import write_report
from libsrv_bench.results import machine_info
from libsrv_bench.rounds import aggregate, enough, find_runs, runs_frame
from libsrv_bench.settings import RunConfig, config_from_args, run_command, run_name

pytestmark = pytest.mark.fast

BASE = RunConfig(duration=2, warmup=0.5, processes=2)


@pytest.fixture(autouse=True)
def close_figures():
    """Every section draws its figures: close them after each test."""
    yield
    plt.close("all")
STEP = iter(range(10**6))


def fake_run(root: Path, config: RunConfig, *, throughput: float, latency_ms: float = 2.0,
             requests: int = 5000, busy: float = 0.5, cpu_us: float = 300.0,
             details: list[dict[str, Any]] | None = None, cpus: int = 2) -> Path:
    """A run folder as run_experiment writes it: every request took `latency_ms` but the last
    1% took ten times as long."""
    step = next(STEP)
    folder = root / f"{run_name(config)}-{step}"
    folder.mkdir(parents=True)
    hist = new_histogram()
    slow = requests // 100
    hist.record_value(int(latency_ms * 1e6), requests - slow)
    hist.record_value(int(latency_ms * 10e6), slow)
    (folder / "latency.hdr").write_text(json.dumps({"corrected": hist.encode().decode(),
                                                    "uncorrected": hist.encode().decode()}))
    details = details or []
    (folder / "violations.json").write_text(json.dumps({"details": details}))
    p = {q: hist.get_value_at_percentile(q) / 1e6 for q in (50, 90, 99, 99.9, 100)}
    summary = {"name": folder.name, "config": asdict(config), "throughput": throughput,
               "p50_ms": p[50], "p90_ms": p[90], "p99_ms": p[99], "p999_ms": p[99.9],
               "max_ms": p[100], "timeouts": 0, "errors": 0, "violations": len(details),
               "requests": requests, "cost": {"server_cpu_us_per_request": cpu_us,
                                              "machine_busy": busy},
               "load": {"cpu_us_per_request": 100.0},
               "machine": {**machine_info(), "cpus": cpus},
               # runs a second apart, in the order this test writes them
               "started_at": f"2026-01-01T{10 + step // 3600:02}:{step // 60 % 60:02}:"
                             f"{step % 60:02}",
               "command": run_command(config)}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def table_of(root: Path):
    return aggregate(runs_frame(find_runs([root])))


def test_a_configuration_is_its_median_over_rounds_with_the_spread(tmp_path: Path) -> None:
    for throughput in (100.0, 300.0, 200.0):
        fake_run(tmp_path, BASE, throughput=throughput)
    (row,) = table_of(tmp_path).itertuples()
    assert (row.rounds, row.throughput, row.throughput_lo, row.throughput_hi) == \
        (3, 200.0, 100.0, 300.0)


def test_each_round_is_compared_with_the_transports_limit_of_the_same_round(
        tmp_path: Path) -> None:
    # round 1: limit 1000, server 500 (0.5); round 2: limit 500, server 400 (0.8). Against the
    # median limit (750) the ratios would be 0.67 and 0.53 instead.
    for limit, server in ((1000.0, 500.0), (500.0, 400.0)):
        fake_run(tmp_path, replace(BASE, echo="proxy"), throughput=limit)
        fake_run(tmp_path, BASE, throughput=server)
    table = table_of(tmp_path)
    server = table[table["echo"] == ""].iloc[0]
    assert (server["throughput_vs_echo_lo"], server["throughput_vs_echo_hi"]) == \
        pytest.approx((0.5, 0.8))
    (limit,) = [s for s in sections([tmp_path]) if s.key == "limit"]
    assert "0.65 (0.50–0.80)" in limit.conclusion


def test_another_stacks_echo_is_never_taken_for_the_transports_limit(tmp_path: Path) -> None:
    for _ in range(2):  # in each round: the limit, then the server, then HTTP's own echo
        fake_run(tmp_path, replace(BASE, echo="proxy"), throughput=1000.0)
        fake_run(tmp_path, BASE, throughput=400.0)
        fake_run(tmp_path, replace(BASE, echo="proxy", transport="http"), throughput=500.0)
    table = table_of(tmp_path)
    server = table[(table["echo"] == "") & table["config"].map(
        lambda c: c.transport == "zmq")].iloc[0]
    assert server["throughput_vs_echo"] == pytest.approx(0.4)


def test_the_workers_conclusion_is_computed_from_the_runs(tmp_path: Path) -> None:
    for _ in range(3):
        fake_run(tmp_path, replace(BASE, workers=1), throughput=1000.0, busy=0.6, cpu_us=400)
        fake_run(tmp_path, replace(BASE, workers=4), throughput=1600.0, busy=0.97, cpu_us=420)
        fake_run(tmp_path, replace(BASE, workers=0), throughput=2400.0, busy=0.9, cpu_us=150)
    (workers,) = [s for s in sections([tmp_path]) if s.key == "workers"]
    assert "4 workers gave 1.6x the throughput of 1 (1,600 against 1,000" in workers.conclusion
    assert "2 cores were 97% busy" in workers.conclusion
    assert "nearly full" in workers.conclusion
    assert "answered 2,400 requests/s, 1.5x the best broker (4 workers)" in workers.conclusion
    assert "270 µs" in workers.conclusion  # 420 - 150, what the broker hop costs
    assert list(workers.table["workers"]) == ["0 (single REP)", "1", "4"]
    assert "medians of 3 interleaved rounds" in workers.conclusion
    (trabajadores,) = [s for s in sections([tmp_path], "es") if s.key == "workers"]
    assert "4 trabajadores dieron 1.6x el rendimiento de 1 (1,600 frente a 1,000" in \
        trabajadores.conclusion
    assert "ocupados un 97%" in trabajadores.conclusion
    assert "medianas de 3 rondas alternas" in trabajadores.conclusion
    assert list(trabajadores.table["trabajadores"]) == ["0 (un solo REP)", "1", "4"]
    drawn = " ".join(t.get_text() for t in drawn_texts(trabajadores.figure))
    assert "procesos trabajadores" in drawn and "worker" not in drawn
    for section in (workers, trabajadores):
        plt.close(section.figure)


def test_the_clients_and_limit_sections_speak_spanish_when_asked(tmp_path: Path) -> None:
    for _ in range(2):
        for clients, throughput in ((1, 500.0), (16, 2000.0)):
            fake_run(tmp_path, replace(BASE, clients=clients), throughput=throughput)
            fake_run(tmp_path, replace(BASE, clients=clients, echo="proxy"),
                     throughput=2 * throughput)
    found = {s.key: s for s in sections([tmp_path], "es")}
    assert found["clients"].title == "Latencia según los clientes"
    assert found["clients"].conclusion.startswith("De 1 a 16 clientes, la latencia mediana")
    assert found["percentiles"].title == "Toda la distribución de la latencia"
    assert found["limit"].title == "Frente al límite del transporte"
    assert "respondió 0.50" in found["limit"].conclusion
    assert "rendimiento / límite" in found["limit"].table.columns
    assert found["limit"].table["configuración"].iloc[0] == \
        "journal, 2 trabajadores, 1 cliente, read-mostly"
    assert "del proxy de libzmq + 2 trabajadores eco con los mismos" in found["limit"].conclusion
    for key in ("clients", "percentiles", "limit"):
        drawn = " ".join(t.get_text() for t in drawn_texts(found[key].figure))
        assert not {"clients", "latency", "throughput", "rounds"} & set(drawn.split()), drawn
    for section in found.values():
        plt.close(section.figure)
        for _, picture in section.pictures:
            plt.close(picture)


def test_one_round_is_not_presented_as_settled(tmp_path: Path) -> None:
    for clients, throughput in ((1, 500.0), (16, 2000.0)):
        fake_run(tmp_path, replace(BASE, clients=clients), throughput=throughput)
    clients = next(s for s in sections([tmp_path]) if s.key == "clients")
    assert "one round only" in clients.conclusion
    assert "(" not in clients.table["req/s"].iloc[0]  # no spread to show


def test_the_repeat_commands_run_as_printed_in_the_rows_order(tmp_path: Path) -> None:
    configs = [replace(BASE, clients=c) for c in (64, 1, 16, 4)]  # written out of order
    for config in configs:
        fake_run(tmp_path, config, throughput=1000.0)
    clients = next(s for s in sections([tmp_path]) if s.key == "clients")
    activate, *commands = clients.markdown().split("```\n")[1].splitlines()
    assert activate.startswith("source .venv/bin/activate")
    parser = build_parser()
    repeated = []
    for command in commands:
        python, dash_m, module, *argv = shlex.split(command)
        assert (python, dash_m, module) == ("python", "-m", "libsrv_bench")
        repeated.append(config_from_args(parser.parse_args(argv)))
    assert [c.clients for c in repeated] == [1, 4, 16, 64]
    assert sorted(repeated, key=lambda c: c.clients) == \
        sorted(configs, key=lambda c: c.clients)


def figure_words(section) -> str:
    return " ".join(text.get_text() for text in section.figure.texts)


@pytest.mark.parametrize(("rounds", "requests", "hollow"), [
    (3, 5000, None), (1, 5000, "one round only"),
    (3, 500, "too few requests for that percentile")])
def test_hollow_marks_are_explained_only_where_a_figure_has_them(
        tmp_path: Path, rounds: int, requests: int, hollow: str | None) -> None:
    for _ in range(rounds):
        for clients in (1, 16):
            fake_run(tmp_path, replace(BASE, clients=clients), throughput=1000.0,
                     requests=requests)
    clients = next(s for s in sections([tmp_path]) if s.key == "clients")
    words = figure_words(clients)
    assert ("hollow mark" in words) == (hollow is not None), words
    if hollow:
        assert hollow in words
    curves = next(s for s in sections([tmp_path]) if s.key == "percentiles")
    assert "hollow" not in figure_words(curves)  # curves have no marks


@pytest.mark.parametrize(("single", "barely"), [(900.0, True), (500.0, False)])
def test_the_limit_section_says_when_the_limit_is_barely_above_a_server(
        tmp_path: Path, single: float, barely: bool) -> None:
    for _ in range(2):
        fake_run(tmp_path, replace(BASE, workers=0, echo="proxy"), throughput=1000.0)
        fake_run(tmp_path, replace(BASE, workers=0), throughput=single)
    (limit,) = [s for s in sections([tmp_path]) if s.key == "limit"]
    assert ("barely above the server" in limit.conclusion) == barely, limit.conclusion
    if barely:
        assert "0.90x of it" in limit.conclusion and "does not make" in limit.conclusion


def test_a_p99_ratio_from_too_few_requests_is_marked_in_the_limit_section(
        tmp_path: Path) -> None:
    fake_run(tmp_path, replace(BASE, echo="proxy"), throughput=1000.0, requests=5000)
    fake_run(tmp_path, BASE, throughput=300.0, requests=400)
    (limit,) = [s for s in sections([tmp_path]) if s.key == "limit"]
    assert limit.table["p99 / limit"].iloc[0].endswith(" †")
    assert "the echo's †" in limit.conclusion


def test_a_percentile_measured_on_too_few_requests_is_marked(tmp_path: Path) -> None:
    assert enough(1000, 99) and not enough(999, 99) and not enough(9999, 99.9)
    fake_run(tmp_path, BASE, throughput=2000.0, requests=5000)
    fake_run(tmp_path, replace(BASE, storage="json"), throughput=40.0, requests=80,
             latency_ms=300)
    storage = next(s for s in sections([tmp_path]) if s.key == "storage")
    marks = dict(zip(storage.table["storage"], storage.table["p99 ms"], strict=True))
    assert marks["json"].endswith("†") and not marks["journal"].endswith("†")
    assert "journal answered 50x the requests per second of json" in storage.conclusion


def test_the_storage_and_real_work_sections_speak_spanish_when_asked(tmp_path: Path) -> None:
    fake_run(tmp_path, BASE, throughput=2000.0)
    fake_run(tmp_path, replace(BASE, storage="json"), throughput=40.0, requests=80)
    titles = replace(BASE, workload="mix:query_title=100", clients=16)
    for workers, throughput in ((0, 200.0), (1, 100.0), (2, 190.0)):
        fake_run(tmp_path, replace(BASE, workers=workers), throughput=1000.0)
        fake_run(tmp_path, replace(titles, workers=workers), throughput=throughput,
                 cpu_us=4000.0)
    found = {s.key: s for s in sections([tmp_path], "es")}
    storage, work = found["storage"], found["workers-real-work"]
    assert storage.title == "Motores de almacenamiento"
    assert re.search(r"journal respondió \d+x las peticiones por segundo de json",
                     storage.conclusion)
    assert "almacenamiento" in storage.table.columns
    assert work.title == "Trabajadores cuando las peticiones hacen trabajo de verdad"
    assert work.conclusion.startswith("Con consultas por título sobre")
    assert "2 trabajadores dieron 1.9x el rendimiento de 1" in work.conclusion
    for section in (storage, work):
        drawn = " ".join(t.get_text() for t in drawn_texts(section.figure))
        assert not {"requests", "workers", "storage", "latency"} & set(drawn.split()), drawn


def test_the_lost_update_section_counts_every_round_and_words_the_findings(
        tmp_path: Path) -> None:
    fight = replace(BASE, workload="hot-spot", hot=1)
    finding = {"book": "9798000000007", "kind": "double-loan",
               "detail": "client 4 was told its loan of «El silencio» (9798000000007) "
                         "succeeded between 208.5 and 215.6 ms, but ...", "ops": []}
    for count in (2, 0, 3):
        fake_run(tmp_path, replace(fight, unsafe_no_lock=True), throughput=3000.0,
                 details=[finding] * count)
        fake_run(tmp_path, fight, throughput=2500.0)
    (lost,) = [s for s in sections([tmp_path]) if s.key == "lost-update"]
    assert "anomalies in 2 of 3 round(s) (2, 0, 3)" in lost.conclusion
    assert "With the lock, it found none in 3 round(s)" in lost.conclusion
    assert lost.findings[0].startswith("double-loan: client 4 was told its loan of «El silencio»")
    assert list(lost.table["lock"]) == ["off", "on"]
    (perdida,) = [s for s in sections([tmp_path], "es") if s.key == "lost-update"]
    assert "anomalías en 2 de 3 ronda(s) (2, 0, 3)" in perdida.conclusion
    assert "Con el cerrojo no encontró ninguna en 3 ronda(s)" in perdida.conclusion
    assert perdida.findings[0].startswith("préstamo doble (una actualización perdida")
    assert list(perdida.table["cerrojo"]) == ["sin", "con"]
    drawn = " ".join(t.get_text() for t in drawn_texts(perdida.figure))
    assert "sin el cerrojo" in drawn and "ronda 1" in drawn and "round" not in drawn
    for section in (lost, perdida):
        plt.close(section.figure)


def drawn_texts(fig: plt.Figure) -> list[Any]:
    """Every piece of text the figure draws (tick labels only where there is a tick)."""
    texts = [*fig.texts, *(t for t in (fig._supxlabel, fig._supylabel, fig._suptitle) if t)]
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        if ax.get_legend():
            texts += ax.get_legend().get_texts()
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            texts += [t.label1 for t in axis.get_major_ticks()
                      if low - 1e-9 <= t.get_loc() <= high + 1e-9]
    unique = {id(t): t for t in texts if t.get_visible() and t.get_text().strip()}
    return list(unique.values())


def test_the_report_has_a_section_per_experiment_and_figures_without_overlapping_text(
        tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    fight = replace(BASE, workload="hot-spot", hot=1)
    finding = {"book": "1", "kind": "double-return", "detail": "client 2 was told ...",
               "ops": []}
    for round_ in range(3):
        fake_run(runs, replace(BASE, echo="proxy"), throughput=6000.0 + round_)
        fake_run(runs, BASE, throughput=3500.0 - 100 * round_)
        fake_run(runs, replace(BASE, storage="json"), throughput=50.0, requests=100,
                 latency_ms=200)
        for clients in (1, 4, 64):
            fake_run(runs, replace(BASE, clients=clients), throughput=900.0 * clients ** 0.3,
                     latency_ms=0.5 * clients ** 0.7)
        for workers in (0, 1, 4):
            fake_run(runs, replace(BASE, workers=workers), throughput=3000.0 + 500 * workers)
        fake_run(runs, replace(fight, unsafe_no_lock=True), throughput=3000.0,
                 details=[finding] * (round_ + 1))
        fake_run(runs, fight, throughput=2500.0)
    found = sections([runs])
    assert [s.key for s in found] == ["limit", "clients", "percentiles", "workers", "storage",
                                      "lost-update"]
    for section in found:
        fig = section.figure
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        width, height = fig.canvas.get_width_height()
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in drawn_texts(fig)]
        for index, (text, box) in enumerate(boxes):
            assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height, \
                (section.key, text, "outside the figure")
            for other, other_box in boxes[index + 1:]:
                assert not box.overlaps(other_box), (section.key, text, other)
        plt.close(fig)
    report = write_report([runs], tmp_path / "report")
    text = report.read_text()
    for section in found:
        assert f"## {section.title}" in text and f"figures/{section.key}.png" in text
        assert (tmp_path / "report" / "figures" / f"{section.key}.png").stat().st_size > 10_000
    assert "Not in these runs" not in text
    assert text.count("**What the runs show.**") == len(found)
    # the same runs as the class's report: every section, table and label in Spanish
    informe = write_report([runs], tmp_path / "informe", lang="es").read_text()
    for seccion in sections([runs], "es"):
        assert f"## {seccion.title}" in informe
        plt.close(seccion.figure)
    assert informe.count("**Lo que muestran las ejecuciones.**") == len(found)
    assert "## Todas las configuraciones" in informe and "| configuración | rondas |" in informe
    assert "What the runs show" not in informe and "## Every configuration" not in informe
    assert "2 trabajadores" in informe  # the configurations' names
