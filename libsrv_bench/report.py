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
from libsrv_bench.rounds import aggregate, find_runs, runs_frame

ALL_EXPERIMENTS = ("limit", "clients", "workers", "storage", "lost-update")
HOW_MEASURED = (
    "Latency is measured from each request's intended send time (so a server that stalls "
    "cannot hide the requests it delayed) and reported in milliseconds; warm-up requests are "
    "left out. Throughput is the replies received per second of wall time. Each configuration "
    "ran once per round, rounds one after the other, so that the machine's drift touches "
    "every configuration alike; tables give the median over rounds and, in brackets, the "
    "lowest and highest round. † marks a percentile that a round had too few requests to "
    "measure (fewer than 10 beyond it). `server CPU µs/req` is the CPU time the server's "
    "processes spent per request; `cores busy` is the share of all the machine's cores that "
    "was busy during the run.")


def _all_runs(table: pd.DataFrame) -> str:
    shown = pd.DataFrame({
        "configuration": list(table["label"]),
        "rounds": list(table["rounds"]),
        "requests": [f"{v:,}" for v in table["requests"]],
        "req/s": [f"{v:,.0f}" for v in table["throughput"]],
        "p50 ms": [f"{v:.2f}" for v in table["p50_ms"]],
        "p99 ms": [f"{v:.2f}" + ("" if ok else " †")
                   for v, ok in zip(table["p99_ms"], table["p99_ms_enough"], strict=True)],
        "timeouts": list(table["timeouts"]), "errors": list(table["errors"]),
        "anomalies": list(table["violations"]),
    })
    return table_markdown(shown)


def _anchor(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, spaces as hyphens, no punctuation."""
    return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c in "-_")


def write_report(paths: Sequence[Path | str], out: Path | str,
                 title: str = "libsrv experiment report") -> Path:
    """Write ``out/README.md`` (with ``figures/`` and ``runs.csv``) from the runs under
    `paths`; returns the report's path."""
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
    machine = json.loads((runs[0] / "summary.json").read_text())["machine"]
    found: list[Section] = sections(paths)  # (the transports table sits beside its runs)
    parts = [f"# {title}\n",
             f"Written {time.strftime('%Y-%m-%d %H:%M')} from {len(runs)} runs of "
             f"{len(table)} configurations on {machine['processor']} ({machine['cpus']} CPUs), "
             f"{machine['platform']}, Python {machine['python']}, pyzmq {machine['pyzmq']} / "
             f"libzmq {machine['libzmq']}. These numbers describe this machine at this time: "
             "compare ratios across machines, not requests per second.\n"]
    if found:
        parts.append("Experiments: " + ", ".join(f"[{s.title}](#{_anchor(s.title)})"
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
        parts.append(section.markdown(f"figures/{path.name}", pictures))
    missing = [key for key in ALL_EXPERIMENTS if key not in {s.key for s in found}]
    if missing:
        parts.append("Not in these runs: " + ", ".join(missing) + " (no group of runs that "
                     "differ only in that setting). `python -m libsrv_bench demo` runs them all.\n")
    parts += ["## Every configuration\n", _all_runs(table),
              "## How the figures were measured\n", HOW_MEASURED + "\n",
              "`runs.csv` has one row per run, with the folder that holds its every "
              "request.\n"]
    report = out / "README.md"
    report.write_text("\n".join(parts), encoding="utf-8")
    frame.drop(columns=["config"]).to_csv(out / "runs.csv", index=False)
    return report
