"""``python -m libsrv_bench report RUN...``: a lab report in Markdown, with PNG figures, from
run folders.

One section per experiment the runs answer (`libsrv_bench.lab.sections`): the question, the
figure, a conclusion computed from the data, a small table and the commands that repeat its
runs. Then every configuration in one table, and how the figures were measured. ``runs.csv``
beside the report has one row per run, for those who want to compute their own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from libsrv_bench.lab import Section, sections, table_markdown
from libsrv_bench.rounds import aggregate, describe, find_runs, runs_frame

ALL_EXPERIMENTS = ("limit", "clients", "workers", "storage", "lost-update")
_WORDS = {
    "en": {
        "written": "Written {when} from {runs} runs of {configs} configurations on {processor} "
                   "({cpus} CPUs), {platform}, Python {python}, pyzmq {pyzmq} / libzmq "
                   "{libzmq}. These numbers describe this machine at this time: compare ratios "
                   "across machines, not requests per second.\n",
        "data_path": "The broker's data path (docs/broker.md): {paths}.\n",
        "data_path_each": {"compiled": "compiled in {n} run(s)",
                           "python": "Python in {n} run(s)"},
        "experiments": "Experiments: ",
        "missing": "Not in these runs: {keys} (no group of runs that differ only in that "
                   "setting). `python -m libsrv_bench demo` runs them all.\n",
        "every": "## Every configuration\n", "how": "## How the figures were measured\n",
        "measured": (
            "Latency is measured from each request's intended send time (so a server that "
            "stalls cannot hide the requests it delayed) and reported in milliseconds; warm-up "
            "requests are left out. Throughput is the replies received per second of wall "
            "time. Each configuration ran once per round, rounds one after the other, so that "
            "the machine's drift touches every configuration alike; tables give the median "
            "over rounds and, in brackets, the lowest and highest round. † marks a percentile "
            "that a round had too few requests to measure (fewer than 10 beyond it). `server "
            "CPU µs/req` is the CPU time the server's processes spent per request; `cores "
            "busy` is the share of all the machine's cores that was busy during the run."),
        "csv": "`runs.csv` has one row per run, with the folder that holds its every "
               "request.\n",
        "columns": ("configuration", "rounds", "requests", "req/s", "p50 ms", "p99 ms",
                    "timeouts", "errors", "anomalies"),
    },
    "es": {
        "written": "Escrito el {when} a partir de {runs} ejecuciones de {configs} "
                   "configuraciones en {processor} ({cpus} CPU), {platform}, Python {python}, "
                   "pyzmq {pyzmq} / libzmq {libzmq}. Estas cifras describen esta máquina en "
                   "este momento: entre máquinas, compara razones, no peticiones por "
                   "segundo.\n",
        "data_path": "Camino de datos del broker (docs/broker.md): {paths}.\n",
        "data_path_each": {"compiled": "compilado en {n} ejecución(es)",
                           "python": "Python en {n} ejecución(es)"},
        "experiments": "Experimentos: ",
        "missing": "No está en estas ejecuciones: {keys} (ningún grupo de ejecuciones que "
                   "difieran solo en ese ajuste). `python -m libsrv_bench demo` las ejecuta "
                   "todas.\n",
        "every": "## Todas las configuraciones\n", "how": "## Cómo se midieron las cifras\n",
        "measured": (
            "La latencia se mide desde el instante en que cada petición debía enviarse (así un "
            "servidor que se atasca no puede esconder las peticiones que retrasó) y se da en "
            "milisegundos; las peticiones del calentamiento no cuentan. El rendimiento son las "
            "respuestas recibidas por segundo de reloj. Cada configuración se ejecutó una vez "
            "por ronda, una ronda tras otra, para que la deriva de la máquina afecte a todas "
            "por igual; las tablas dan la mediana de las rondas y, entre paréntesis, la ronda "
            "más baja y la más alta. † marca un percentil que una ronda no tuvo peticiones "
            "bastantes para medir (menos de 10 más allá de él). `CPU del servidor` es el "
            "tiempo de CPU que gastaron los procesos del servidor por petición; `núcleos "
            "ocupados` es la parte de todos los núcleos de la máquina que estuvo ocupada "
            "durante la ejecución."),
        "csv": "`runs.csv` tiene una fila por ejecución, con la carpeta que guarda cada una de "
               "sus peticiones.\n",
        "columns": ("configuración", "rondas", "peticiones", "peticiones/s", "p50 ms",
                    "p99 ms", "tiempos agotados", "errores", "anomalías"),
    },
}

def _all_runs(table: pd.DataFrame, lang: str = "en") -> str:
    names = _WORDS["es" if lang == "es" else "en"]["columns"]
    values = [
        list(table["label"]), list(table["rounds"]), [f"{v:,}" for v in table["requests"]],
        [f"{v:,.0f}" for v in table["throughput"]], [f"{v:.2f}" for v in table["p50_ms"]],
        [f"{v:.2f}" + ("" if ok else " †")
         for v, ok in zip(table["p99_ms"], table["p99_ms_enough"], strict=True)],
        list(table["timeouts"]), list(table["errors"]), list(table["violations"])]
    return table_markdown(pd.DataFrame(dict(zip(names, values, strict=True))))


def _anchor(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, spaces as hyphens, no punctuation."""
    return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c in "-_")


def data_path_counts(frame: pd.DataFrame) -> dict[str, int]:
    """How many runs had the broker on each data path ("compiled", "python"), from the runs'
    summaries (runs without a broker, or from before it was recorded, are not counted)."""
    if "data_path" not in frame:
        return {}
    counts = frame["data_path"].value_counts()
    return {path: int(counts[path]) for path in ("compiled", "python") if path in counts}


def write_report(paths: Sequence[Path | str], out: Path | str,
                 title: str = "libsrv experiment report", lang: str = "en") -> Path:
    """Write ``out/README.md`` (with ``figures/`` and ``runs.csv``) from the runs under
    `paths`, in `lang` ("en" or "es": words, tables and figures); returns the report's path."""
    words = _WORDS["es" if lang == "es" else "en"]
    runs = find_runs(paths)
    if not runs:
        raise ValueError("no run folders (with summary.json) among the given paths")
    out = Path(out)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for old in figures.glob("*.png"):
        old.unlink()  # a figure of an experiment these runs do not have must not linger
    frame = runs_frame(runs)
    table = aggregate(frame)
    if lang == "es":  # the configurations' names too
        table = table.assign(label=table["config"].map(lambda c: describe(c, lang)))
    machine = json.loads((runs[0] / "summary.json").read_text())["machine"]
    found: list[Section] = sections(paths, lang)  # (the transports table sits beside its runs)
    parts = [f"# {title}\n", words["written"].format(
        when=time.strftime("%Y-%m-%d %H:%M"), runs=len(runs), configs=len(table), **machine)]
    paths_said = data_path_counts(frame)
    if paths_said:
        parts.append(words["data_path"].format(paths=", ".join(
            words["data_path_each"][path].format(n=n) for path, n in paths_said.items())))
    if found:
        parts.append(words["experiments"] + ", ".join(f"[{s.title}](#{_anchor(s.title)})"
                                                     for s in found) + ".\n")
    for section in found:
        path = figures / f"{section.key}.png"
        section.figure.savefig(path, dpi=110)
        plt.close(section.figure)
        pictures = []
        for number, (_, picture) in enumerate(section.pictures, 1):
            picture_path = figures / f"{section.key}-{number}.png"
            picture.savefig(picture_path, dpi=110)
            plt.close(picture)
            pictures.append(f"figures/{picture_path.name}")
        parts.append(section.markdown(f"figures/{path.name}", pictures, lang))
    missing = [key for key in ALL_EXPERIMENTS if key not in {s.key for s in found}]
    if missing:
        parts.append(words["missing"].format(keys=", ".join(missing)))
    parts += [words["every"], _all_runs(table, lang), words["how"], words["measured"] + "\n",
              words["csv"]]
    report = out / "README.md"
    report.write_text("\n".join(parts), encoding="utf-8")
    frame.drop(columns=["config"]).to_csv(out / "runs.csv", index=False)
    return report
