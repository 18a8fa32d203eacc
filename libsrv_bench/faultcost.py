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


def fault_lines(summary: dict[str, Any]) -> list[str]:
    """One line per fault of a run's summary: when it happened, how long throughput took to
    come back, what it cost (what ``bench run`` prints, and notebook 07)."""
    lines = []
    for fault in summary.get("faults", []):
        if fault["error"]:
            lines.append(f"fault {fault['fault']}: not carried out: {fault['error']}")
            continue
        back = (f"throughput back to {RECOVERED_SHARE:.0%} of before after "
                f"{fault['recovered_after_s']:g} s" if fault["recovered_after_s"] is not None
                else "throughput not back to its level before by the end of the run")
        hit = f" (PID {fault['pid']})" if fault["pid"] else ""
        took = f", restarted in {fault['restart_s']:g} s" if fault.get("restart_s") else ""
        lines.append(f"fault {fault['fault']} at {fault['at_s']:g} s{hit}{took}: {back}; "
                     f"{fault['timeouts']} timeouts, {fault['retried']} retried, "
                     f"{fault['internal']} INTERNAL")
    return lines


def fault_rows(paths: Sequence[Path | str]) -> list[dict[str, Any]]:
    """Every fault of every run under `paths`: the summary's record of it, with the run's
    folder, name, verdict and the command that repeats it."""
    rows = []
    for folder in find_runs(paths):
        summary = json.loads((folder / "summary.json").read_text())
        for fault in summary.get("faults", []):
            if fault.get("error"):
                continue
            rows.append({**fault, "folder": folder, "run": summary.get("name", folder.name),
                         "clean": summary.get("clean"), "violations": summary["violations"],
                         "command": summary.get("command", "")})
    return rows


def _cost(row: dict[str, Any]) -> int:
    return int(row["retried"]) + int(row["timeouts"]) + int(row["internal"])


def _sentence(kind: str, rows: list[dict[str, Any]]) -> str:
    costs = [_cost(r) for r in rows]
    recoveries = [r["recovered_after_s"] for r in rows if r["recovered_after_s"] is not None]
    words = FAULT_WORDS.get(kind, kind)
    if len(rows) == 1:
        cost = f"{costs[0]:,} request(s)"
    else:
        cost = (f"a median of {statistics.median(costs):,.0f} request(s) "
                f"({min(costs):,}-{max(costs):,} over {len(rows)} runs)")
    retried = sum(int(r["retried"]) for r in rows)
    gave_up = sum(int(r["timeouts"]) for r in rows)
    internal = sum(int(r["internal"]) for r in rows)
    text = (f"{words[0].upper()}{words[1:]} cost {cost}: {retried:,} retried, {gave_up:,} given "
            f"up after every retry, {internal:,} answered INTERNAL")
    if recoveries:
        text += (f"; throughput was back to 90% of its level before after "
                 f"{statistics.median(recoveries):.1f} s")
    elif rows:
        text += "; throughput did not come back to 90% of its level before by the end"
    return text + "."


def _figure(kinds: list[str], picked: dict[str, dict[str, Any]]) -> plt.Figure:
    fig, axes = plt.subplots(1, len(kinds), figsize=(max(4.0, 3.2 * len(kinds)), 3.4),
                             squeeze=False, sharey=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        row = picked[kind]
        table = pd.read_csv(row["folder"] / "timeline.csv")
        start = row["at_s"] - MARGIN_S
        end = row["at_s"] + row["duration"] + (row["recovered_after_s"] or 0) + MARGIN_S
        part = table[(table["t_s"] >= start) & (table["t_s"] <= end)]
        ax.plot(part["t_s"] - row["at_s"], part["rate_per_s"], color="#0072B2", lw=1.4)
        if row["duration"]:
            ax.axvspan(0, row["duration"], color="#D62728", alpha=0.15, lw=0)
        ax.axvline(0, color="#D62728", ls="--", lw=1)
        if row["recovered_after_s"] is not None:
            ax.axvline(row["recovered_after_s"], color="#009E73", ls=":", lw=1.2)
        ax.set_title(row["fault"], fontsize=10)
        ax.set_xlabel("seconds from the fault")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("answered per second")
    fig.suptitle("throughput around each fault (red: the fault; green: back to 90%)",
                 fontsize=10)
    fig.tight_layout()
    return fig


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
        "fault": [r["fault"] for r in rows],
        "at (s)": [f"{r['at_s']:.1f}" for r in rows],
        "back to 90% after (s)": ["never" if r["recovered_after_s"] is None else
                                  f"{r['recovered_after_s']:.1f}" for r in rows],
        "retried": [int(r["retried"]) for r in rows],
        "given up": [int(r["timeouts"]) for r in rows],
        "INTERNAL": [int(r["internal"]) for r in rows],
        "run clean": ["yes" if r["clean"] else "no" for r in rows],
    })
    return [Section(
        "faults", "What a fault costs",
        "A worker killed or stopped, the whole server killed and restarted, the network cut, "
        "slowed or lossy: how long does the service take to come back, and which requests "
        "does each cost a client that retries?",
        _figure(kinds, picked), text, shown,
        sorted({r["command"] for r in rows if r["command"]}))]
