"""``python -m libsrv_bench feed-cost``: what publishing the live feed costs, measured side by
side.

The same load runs against a server with its feed (the default), without it (``--no-pub``), and
with it and a subscriber that keeps every change (``--observe``), in interleaved rounds. Each
round's throughput is divided by the same round's run without a feed, so machine drift cancels
out; the table gives the median ratio and its spread, and the server's CPU per request.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path

import pandas as pd

from libsrv_bench.rounds import run_rounds
from libsrv_bench.runner import RunOutcome, summary_row
from libsrv_bench.settings import RunConfig

VARIANTS = ("no feed (--no-pub)", "feed (default)", "feed + subscriber (--observe)")


def plan_for(base: RunConfig) -> list[RunConfig]:
    base = replace(base, no_pub=False, observe=False)
    return [replace(base, no_pub=True), base, replace(base, observe=True)]


def feed_cost(base: RunConfig, rounds: int, out: Path | str, *,
              verbose: bool = True) -> pd.DataFrame:
    """Run the three variants of `base` in `rounds` interleaved rounds; one row per variant."""
    plan = plan_for(base)

    def progress(number: int, total: int, outcome: RunOutcome) -> None:
        if verbose:
            row = summary_row(outcome.summary)
            print(f"[{number}/{total}] {VARIANTS[(number - 1) % len(plan)]:<30} "
                  f"{row['throughput']:>8,.0f} req/s", flush=True)

    folders = run_rounds(plan, rounds, out, progress=False, on_run=progress)
    rows = [summary_row(json.loads((f / "summary.json").read_text()))
            for f in folders]
    by_variant: list[list[dict]] = [rows[i::len(plan)] for i in range(len(plan))]
    table = []
    for name, runs in zip(VARIANTS, by_variant, strict=True):
        ratios = [run["throughput"] / bare["throughput"]
                  for run, bare in zip(runs, by_variant[0], strict=True)]
        cpu = [run["server_cpu_us"] for run in runs if run.get("server_cpu_us") is not None]
        table.append({
            "variant": name,
            "req/s (median)": round(statistics.median(r["throughput"] for r in runs)),
            "req/s (range)": f"{min(r['throughput'] for r in runs):,.0f}–"
                             f"{max(r['throughput'] for r in runs):,.0f}",
            "vs no feed (median)": round(statistics.median(ratios), 3),
            "vs no feed (range)": f"{min(ratios):.3f}–{max(ratios):.3f}",
            "server µs CPU/req": round(statistics.median(cpu)) if cpu else None,
            "violations": sum(r["violations"] for r in runs),
        })
    return pd.DataFrame(table)
