"""The kit's main job: a short default experiment, end to end, ending with the report.

``python -m bench demo`` starts its own servers (one per run, each on a fresh generated
catalog), measures the transport's limit (libzmq's proxy in front of echo workers) and the
server side by side, sweeps clients and workers,
compares the storage engines, runs the lost-update experiment with and without the lock, and
writes ``report/README.md`` with its figures.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from bench.report import write_report
from bench.runner import RunConfig, run_experiment, summary_row
from bench.settings import same_load


def default_plan(seconds: float) -> list[RunConfig]:
    # every run driven by the same load processes, so that ratios compare servers, not loads
    base = same_load(RunConfig(duration=seconds, warmup=0.5, books=10_000))
    plan = [replace(base, echo=True), base, replace(base, storage="json")]
    plan += [replace(base, clients=clients) for clients in (1, 4, 64)]
    plan += [replace(base, workers=workers) for workers in (0, 1, 4)]
    lost = replace(base, workload="hot-spot", hot=1, clients=16)
    plan += [replace(lost, unsafe_no_lock=True), lost, replace(base, workload="class",
                                                                 clients=8)]
    return plan


def run_demo(out: Path, seconds: float = 3.0) -> Path:
    runs = out / "runs" / time.strftime("%Y%m%d-%H%M%S")
    plan = default_plan(seconds)
    print(f"Running {len(plan)} short experiments ({seconds:g} s each, each on its own "
          f"server); results go to {runs}", flush=True)
    for number, config in enumerate(plan, 1):
        outcome = run_experiment(config, runs)
        row = summary_row(outcome.summary)
        print(f"[{number:2}/{len(plan)}] {row['name']:<44} {row['throughput']:>8,.0f} req/s  "
              f"p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  "
              f"violations {row['violations']}", flush=True)
    report = write_report([runs], out, title="libsrv: default experiment")
    print(f"\nReport: {report}")
    return report
