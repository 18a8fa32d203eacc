"""``python -m bench report RUN...``: a Markdown report with PNG figures from run folders.

Every figure carries, in small print, the machine and the commands that produced its runs.
Figures that the given runs cannot support (say, no sweep over clients) are left out, and the
report says so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from bench import plots
from bench.results import read_histogram
from bench.runner import summary_row


def find_runs(paths: Iterable[Path]) -> list[Path]:
    """Run folders among `paths`, and below them (a folder of runs counts for each run)."""
    runs: list[Path] = []
    for path in paths:
        if (path / "summary.json").exists():
            runs.append(path)
        elif path.is_dir():
            runs += sorted(p.parent for p in path.rglob("summary.json"))
    return runs


def runs_table(runs: list[Path]) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    summaries = [json.loads((run / "summary.json").read_text()) for run in runs]
    table = pd.DataFrame([summary_row(s) for s in summaries])
    table["folder"] = [str(r) for r in runs]
    echo = table[table["target"] == "echo"]
    ratios, p99_ratios = [], []
    for _, row in table.iterrows():
        match = echo[(echo["workers"] == row["workers"]) & (echo["clients"] == row["clients"])]
        if row["target"] == "echo" or match.empty:
            ratios.append(float("nan"))
            p99_ratios.append(float("nan"))
        else:
            ratios.append(row["throughput"] / match["throughput"].median())
            p99_ratios.append(row["p99_ms"] / match["p99_ms"].median())
    table["throughput_vs_echo"] = ratios
    table["p99_vs_echo"] = p99_ratios
    return table, summaries


def _footer(fig: plt.Figure, summaries: list[dict[str, Any]]) -> None:
    machine = summaries[0]["machine"] if summaries else {}
    commands = sorted({s["command"] for s in summaries})
    text = (f"{machine.get('processor', '?')}, {machine.get('cpus', '?')} CPUs, "
            f"{machine.get('platform', '?')}, Python {machine.get('python', '?')}, "
            f"libzmq {machine.get('libzmq', '?')}\n" + "\n".join(commands[:6]) +
            (f"\n(+{len(commands) - 6} more commands, see the table)" if len(commands) > 6
             else ""))
    lines = text.count("\n") + 1
    fig.subplots_adjust(bottom=0.12 + 0.035 * lines)
    fig.text(0.01, 0.01, text, fontsize=6, family="monospace", va="bottom", alpha=0.8)


def _save(fig: plt.Figure, summaries: list[dict[str, Any]], path: Path) -> Path:
    _footer(fig, summaries)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fig_latency(runs: list[Path], table: pd.DataFrame, summaries: list[dict[str, Any]],
                path: Path) -> Path:
    histograms = {row["name"]: read_histogram(run)
                  for run, (_, row) in zip(runs, table.iterrows(), strict=True)}
    return _save(plots.latency_percentiles(histograms), summaries, path)


def _of(table: pd.DataFrame, summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The summaries of the runs in `table`: each figure names the commands behind it."""
    names = set(table["name"])
    return [s for s in summaries if s["name"] in names]


def fig_vs_clients(table: pd.DataFrame, summaries: list[dict[str, Any]], path: Path) -> Path:
    return _save(plots.latency_vs_clients(table), _of(table, summaries), path)


def fig_bars(table: pd.DataFrame, column: str, title: str, ylabel: str,
             summaries: list[dict[str, Any]], path: Path) -> Path:
    return _save(plots.bars(table, column, title, ylabel), _of(table, summaries), path)


def _markdown_table(table: pd.DataFrame) -> str:
    columns = ["name", "target", "workers", "clients", "books", "requests", "throughput",
               "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "timeouts", "errors",
               "violations", "throughput_vs_echo", "p99_vs_echo", "server_cpu_us",
               "load_cpu_us", "machine_busy"]
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    rows = []
    for _, row in table[columns].iterrows():
        cells = []
        for column in columns:
            value = row[column]
            if value is None:
                cells.append("–")
            elif isinstance(value, float):
                whole = column in ("throughput", "server_cpu_us", "load_cpu_us")
                cells.append("–" if value != value else (f"{value:,.0f}" if whole
                                                          else f"{value:.3f}"))
            else:
                cells.append(str(value))
        rows.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def write_report(paths: list[Path], out: Path, title: str = "libsrv experiment report") -> Path:
    runs = find_runs(paths)
    if not runs:
        raise ValueError("no run folders (with summary.json) among the given paths")
    out.mkdir(parents=True, exist_ok=True)
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    table, summaries = runs_table(runs)
    machine = summaries[0]["machine"]
    parts = [f"# {title}\n",
             f"Written {time.strftime('%Y-%m-%d %H:%M')} from {len(runs)} run(s) on "
             f"{machine['processor']} ({machine['cpus']} CPUs), {machine['platform']}, "
             f"Python {machine['python']}, pyzmq {machine['pyzmq']} / libzmq "
             f"{machine['libzmq']}.\n",
             "Latency is measured from each request's intended send time (corrected for "
             "coordinated omission) and reported in milliseconds; warm-up requests are left "
             "out. Ratios compare a run with the transport's limit (libzmq's C proxy in front of "
             "the same number of REP echo workers; a bare REP echo for a single REP server) "
             "with the same clients, measured on the same machine in the same session. "
             "`server_cpu_us` and `load_cpu_us` are the CPU time one request cost the server's "
             "processes and the load generator; `machine_busy` is the share of all cores that "
             "was busy (1.0 = every core).\n",
             "## Runs\n", _markdown_table(table),
             "\nCommands:\n\n```\n" + "\n".join(s["command"] for s in summaries) + "\n```\n"]
    made = [("Latency distribution", fig_latency(runs, table, summaries,
                                                 figures / "latency.png"))]
    skipped = []
    def varied(column: str, fixed: list[str]) -> pd.DataFrame:
        """Rows of the largest group (same `fixed` columns) in which `column` varies."""
        groups = [g for _, g in table.groupby(fixed) if g[column].nunique() > 1]
        return max(groups, key=len) if groups else table.iloc[0:0]

    by_clients = varied("clients", ["target", "workers", "workload"])
    if not by_clients.empty:
        made.append(("Latency against clients",
                     fig_vs_clients(by_clients, summaries, figures / "latency_vs_clients.png")))
    else:
        skipped.append("latency against clients (all runs have the same number of clients)")
    by_workers = varied("workers", ["target", "workload", "clients"])
    if not by_workers.empty:
        made.append(("Throughput against workers", fig_bars(
            by_workers.sort_values("workers"), "throughput", "Throughput against workers",
            "requests / s", summaries, figures / "throughput_vs_workers.png")))
    else:
        skipped.append("throughput against workers (all runs have the same workers)")
    servers = table[~table["target"].str.contains("echo")]
    engines = varied("target", ["workload", "clients", "workers"])
    engines = engines[~engines["target"].str.contains("echo")]
    if engines["target"].nunique() > 1:
        made.append(("json vs journal storage", fig_bars(
            engines, "throughput", "Storage engines: throughput", "requests / s", summaries,
            figures / "storage.png")))
    else:
        skipped.append("json vs journal (only one storage engine among the runs)")
    if not servers.empty:
        made.append(("Verifier verdicts", fig_bars(
            servers, "violations", "Lost-update verifier: violations found (red: no lock)",
            "violations", summaries, figures / "verdicts.png")))
    ratios = table[table["throughput_vs_echo"].notna()]
    if not ratios.empty:
        made.append(("Ratio to the echo baseline", fig_bars(
            ratios, "throughput_vs_echo", "Throughput as a fraction of the transport's limit",
            "server / echo", summaries, figures / "vs_echo.png")))
    else:
        skipped.append("ratio to the echo baseline (no echo run with the same shape)")
    violations = []
    for run, summary in zip(runs, summaries, strict=True):
        details = json.loads((run / "violations.json").read_text()).get("details", [])
        violations += [(summary["name"], detail) for detail in details[:5]]
    parts.append("\n## Figures\n")
    for caption, png in made:
        parts.append(f"### {caption}\n\n![{caption}](figures/{png.name})\n")
    if skipped:
        parts.append("Not drawn: " + "; ".join(skipped) + ".\n")
    parts.append("\n## Verifier findings\n")
    if violations:
        for name, detail in violations:
            parts.append(f"- **{name}**, book {detail['book']}: {detail['kind']} — "
                         f"{detail['detail']}")
        parts.append("")
    else:
        parts.append("No violations: every acknowledged loan and return adds up.\n")
    report = out / "README.md"
    report.write_text("\n".join(parts), encoding="utf-8")
    table.to_csv(out / "runs.csv", index=False)
    return report
