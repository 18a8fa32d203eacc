"""The report's section "What a fault costs": for each kind of fault among the runs, the
throughput around it, how long it took to come back and which requests it cost, in words
computed from the runs' summaries and timelines.

A run with a fault schedule (`--fault`) records in its summary each fault as it happened, its
recovery and its cost (`libsrv_bench.faults.fault_summary`), and its ``timeline.csv``. This
module reads those and needs nothing else; `fault_sections(paths)` is what the report calls.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from libsrv_bench.faults import FAULT_WORDS, RECOVERED_SHARE
from libsrv_bench.lab import Section
from libsrv_bench.rounds import find_runs

MARGIN_S = 1.5  # seconds of timeline drawn before a fault and after its recovery


_LINE_WORDS = {
    "en": {"failed": "fault {fault}: not carried out: {error}",
           "back": "throughput back to {share:.0%} of before after {s:g} s",
           "never": "throughput not back to its level before by the end of the run",
           "took": ", restarted in {s:g} s",
           "line": "fault {fault} at {at:g} s{hit}{took}: {back}; {timeouts} timeouts, "
                   "{retried} retried, {internal} INTERNAL"},
    "es": {"failed": "fallo {fault}: no se hizo: {error}",
           "back": "el rendimiento volvió al {share:.0%} del de antes tras {s:g} s",
           "never": "el rendimiento no volvió a su nivel de antes antes del final",
           "took": ", arrancado de nuevo en {s:g} s",
           "line": "fallo {fault} a los {at:g} s{hit}{took}: {back}; {timeouts} tiempos "
                   "agotados, {retried} reintentadas, {internal} INTERNAL"},
}


def fault_lines(summary: dict[str, Any], lang: str = "en") -> list[str]:
    """One line per fault of a run's summary: when it happened, how long throughput took to
    come back, what it cost (what ``bench run`` prints, and notebook 07, in `lang`)."""
    words = _LINE_WORDS["es" if lang == "es" else "en"]
    lines = []
    for fault in summary.get("faults", []):
        if fault["error"]:
            lines.append(words["failed"].format(fault=fault["fault"], error=fault["error"]))
            continue
        back = (words["back"].format(share=RECOVERED_SHARE, s=fault["recovered_after_s"])
                if fault["recovered_after_s"] is not None else words["never"])
        hit = f" (PID {fault['pid']})" if fault["pid"] else ""
        took = words["took"].format(s=fault["restart_s"]) if fault.get("restart_s") else ""
        lines.append(words["line"].format(fault=fault["fault"], at=fault["at_s"], hit=hit,
                                          took=took, back=back, timeouts=fault["timeouts"],
                                          retried=fault["retried"],
                                          internal=fault["internal"]))
    return lines


def fault_rows(paths: Sequence[Path | str]) -> list[dict[str, Any]]:
    """Every fault of every run under `paths`: the summary's record of it, with the run's
    folder, name, verdict and the command that repeats it."""
    rows = []
    for folder in find_runs(paths):
        summary = json.loads((folder / "summary.json").read_text())
        done = sorted((f for f in summary.get("faults", []) if not f.get("error")),
                      key=lambda f: f["at_s"])
        for fault in done:
            # the panel stops at the neighbouring faults of the same run (not at one that
            # overlaps it: both are drawn over the same seconds)
            ends = [f["at_s"] + f["duration"] for f in done
                    if f["at_s"] + f["duration"] <= fault["at_s"] and f is not fault]
            starts = [f["at_s"] for f in done if f["at_s"] >= fault["at_s"] + fault["duration"]
                      and f is not fault]
            after = max(ends, default=None)
            before = min(starts, default=None)
            rows.append({**fault, "folder": folder, "run": summary.get("name", folder.name),
                         "clean": summary.get("clean"),
                         "command": summary.get("command", ""), "after_s": after,
                         "before_s": before})
    return rows


def _cost(row: dict[str, Any]) -> int:
    return int(row["retried"]) + int(row["timeouts"]) + int(row["internal"])


def _median_text(values: list[int]) -> str:
    """A count over runs: the value itself when every run agrees, else median and range."""
    if min(values) == max(values):
        return f"{values[0]:,}"
    return f"{statistics.median(values):,.0f} ({min(values):,}-{max(values):,})"


def _sentence(kind: str, rows: list[dict[str, Any]]) -> str:
    words = FAULT_WORDS.get(kind, kind)
    costs = [_cost(r) for r in rows]
    if max(costs) == 0:
        cost = "no request" + (f" in any of {len(rows)} runs" if len(rows) > 1 else "")
    elif min(costs) == max(costs):
        cost = f"{costs[0]:,} request(s)" + (f" in each of {len(rows)} runs"
                                            if len(rows) > 1 else "")
    else:
        cost = (f"a median of {statistics.median(costs):,.0f} request(s) over {len(rows)} "
                f"runs (from {min(costs):,} to {max(costs):,})")
    text = (f"{words[0].upper()}{words[1:]} cost {cost}: "
            f"{_median_text([int(r['retried']) for r in rows])} retried, "
            f"{_median_text([int(r['timeouts']) for r in rows])} given up after every retry, "
            f"{_median_text([int(r['internal']) for r in rows])} answered INTERNAL")
    recoveries = [r["recovered_after_s"] for r in rows if r["recovered_after_s"] is not None]
    if recoveries:
        text += (f"; throughput was back to {RECOVERED_SHARE:.0%} of its level before after "
                 f"{statistics.median(recoveries):.1f} s")
        if len(recoveries) < len(rows):
            text += f" ({len(rows) - len(recoveries)} run(s) not back by their end)"
    else:
        text += (f"; throughput did not come back to {RECOVERED_SHARE:.0%} of its level before "
                 "by the end")
    return text + "."


def _figure(kinds: list[str], picked: dict[str, dict[str, Any]]) -> plt.Figure:
    columns = min(3, len(kinds))
    lines = -(-len(kinds) // columns)
    fig, grid = plt.subplots(lines, columns, figsize=(3.4 * columns, 2.9 * lines),
                             squeeze=False)
    axes = list(grid.flat)
    for ax in axes[len(kinds):]:
        ax.set_visible(False)
    for ax, kind in zip(axes, kinds, strict=False):
        row = picked[kind]
        table = pd.read_csv(row["folder"] / "timeline.csv")
        start = row["at_s"] - MARGIN_S
        end = row["at_s"] + row["duration"] + (row["recovered_after_s"] or 0) + MARGIN_S
        if row["after_s"] is not None:
            start = max(start, (row["after_s"] + row["at_s"]) / 2)
        if row["before_s"] is not None:
            end = min(end, row["before_s"] - 0.1)  # the interval before the next one
        part = table[(table["t_s"] >= start) & (table["t_s"] <= end)]
        ax.plot(part["t_s"] - row["at_s"], part["rate_per_s"], color="#0072B2", lw=1.4)
        if row["duration"]:
            ax.axvspan(0, row["duration"], color="#D62728", alpha=0.15, lw=0)
        ax.axvline(0, color="#D62728", ls="--", lw=1)
        if row["recovered_after_s"] is not None:
            ax.axvline(row["recovered_after_s"], color="#009E73", ls=":", lw=1.2)
        ax.set_title(row["fault"], fontsize=10)
        ax.set_xlabel("seconds from the fault")
        ax.set_ylabel("answered per second")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.suptitle(f"throughput around each fault (red: the fault; green: back to "
                 f"{RECOVERED_SHARE:.0%})", fontsize=10)
    fig.tight_layout()
    return fig


def _recovery_text(rows: list[dict[str, Any]]) -> str:
    values = [r["recovered_after_s"] for r in rows if r["recovered_after_s"] is not None]
    if not values:
        return "never"
    text = f"{statistics.median(values):.1f}"
    if f"{min(values):.1f}" != f"{max(values):.1f}":
        text += f" ({min(values):.1f}-{max(values):.1f})"
    return text + ("" if len(values) == len(rows) else f", {len(rows) - len(values)} never")


def fault_sections(paths: Sequence[Path | str]) -> list[Section]:
    """The section, when some run under `paths` had faults; else none."""
    rows = fault_rows(paths)
    if not rows:
        return []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    kinds = list(by_kind)
    # the figure shows, for each kind, the run whose cost is the median one
    picked = {kind: sorted(group, key=_cost)[len(group) // 2] for kind, group in
              by_kind.items()}
    runs = {r["run"]: r for r in rows}
    unclean = [name for name, r in runs.items() if not r["clean"]]
    text = " ".join(_sentence(kind, by_kind[kind]) for kind in kinds)
    if unclean:
        text += (f" {len(unclean)} of {len(runs)} run(s) with faults were not clean "
                 f"({', '.join(unclean)}): see their findings.")
    else:
        text += (f" Every one of the {len(runs)} run(s) with faults was clean: the verifier "
                 "found no lost or doubled update across the faults.")
    shown = pd.DataFrame({
        "fault": [by_kind[k][0]["fault"] for k in kinds],
        "runs": [len(by_kind[k]) for k in kinds],
        f"back to {RECOVERED_SHARE:.0%} after (s)": [_recovery_text(by_kind[k]) for k in kinds],
        "retried": [_median_text([int(r["retried"]) for r in by_kind[k]]) for k in kinds],
        "given up": [_median_text([int(r["timeouts"]) for r in by_kind[k]]) for k in kinds],
        "INTERNAL": [_median_text([int(r["internal"]) for r in by_kind[k]]) for k in kinds],
        "runs clean": [f"{sum(bool(r['clean']) for r in by_kind[k])} of {len(by_kind[k])}"
                       for k in kinds],
    })
    return [Section(
        "faults", "What a fault costs",
        "A worker killed or stopped, the whole server killed and restarted, the network cut, "
        "slowed or lossy: how long does the service take to come back, and which requests "
        "does each cost a client that retries?",
        _figure(kinds, picked), text, shown,
        sorted({r["command"] for r in rows if r["command"]}))]
