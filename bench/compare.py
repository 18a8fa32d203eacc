"""``python -m bench compare``: configurations side by side, as ratios to one reference.

Shared machines are noisy, so absolute figures move from minute to minute. This runs the
reference (by default the bare echo through the same topology) and each candidate in
interleaved rounds, and reports per-round ratios and their median: the figure to quote.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from bench.runner import RunConfig, run_experiment


def compare(reference: RunConfig, candidates: dict[str, RunConfig], *, rounds: int = 3,
            out: Path | str = "report/compare", progress: bool = False) -> pd.DataFrame:
    """Median throughput and p99 ratios of each candidate to `reference`, over `rounds`
    interleaved rounds (reference, candidates..., reference, ...)."""
    rows: list[dict[str, Any]] = []
    for number in range(rounds):
        ref = run_experiment(replace(reference, label=f"reference-r{number}"), out,
                             progress=progress).summary
        rows.append({"round": number, "name": "reference", "throughput": ref["throughput"],
                     "p50_ms": ref["p50_ms"], "p99_ms": ref["p99_ms"], "violations": 0})
        for name, config in candidates.items():
            got = run_experiment(replace(config, label=f"{name}-r{number}"), out,
                                 progress=progress).summary
            rows.append({"round": number, "name": name, "throughput": got["throughput"],
                         "p50_ms": got["p50_ms"], "p99_ms": got["p99_ms"],
                         "violations": got["violations"],
                         "throughput_ratio": got["throughput"] / ref["throughput"],
                         "p99_ratio": got["p99_ms"] / ref["p99_ms"]})
    return pd.DataFrame(rows)


def medians(table: pd.DataFrame) -> pd.DataFrame:
    out = []
    for name, group in table.groupby("name", sort=False):
        row = {"name": name, "runs": len(group),
               "throughput": statistics.median(group["throughput"]),
               "p50_ms": statistics.median(group["p50_ms"]),
               "p99_ms": statistics.median(group["p99_ms"])}
        if name != "reference":
            row["throughput_ratio"] = statistics.median(group["throughput_ratio"])
            row["p99_ratio"] = statistics.median(group["p99_ratio"])
            row["violations"] = int(group["violations"].sum())
        out.append(row)
    return pd.DataFrame(out)
