"""The kit's main job: a short default experiment, end to end, ending with the lab report.

``python -m libsrv_bench demo`` starts its own servers (one per run, each on a fresh generated
catalog) and runs every experiment of the report in interleaved rounds: the transport's limit
(libzmq's proxy in front of echo workers) beside the server, clients 1 to 64, workers 0 to 4,
workers 1 and 2 on queries by title (requests that do real work), the two storage engines, and
the lost-update experiment with and without the lock, and a run through one fault of each
kind (a killed and a stopped worker, a partition, message loss, the whole server killed and
restarted). It then writes ``report/README.md`` with
its figures.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from libsrv_bench.report import write_report
from libsrv_bench.rounds import run_rounds
from libsrv_bench.runner import RunConfig, RunOutcome, summary_row
from libsrv_bench.settings import DEMO_ROUNDS, DEMO_SECONDS, same_load

# the restart first: it takes a second or more, and the run must see the service come back
DEMO_FAULTS = ("kill-server@1", "kill-worker@4.5", "stop-worker@5.5+0.5", "partition@7+0.5",
               "loss@8.5+0.5:20%")


def default_plan(seconds: float) -> list[RunConfig]:
    """One round of the demo: each configuration once, the default server first."""
    # every run driven by the same load processes, so that ratios compare servers, not loads
    base = same_load(RunConfig(duration=seconds, warmup=0.5, books=10_000))
    plan = [replace(base, echo=True), base, replace(base, storage="json")]
    plan += [replace(base, clients=clients) for clients in (1, 4, 64)]
    plan += [replace(base, workers=workers) for workers in (0, 1, 4)]
    # requests that do real work (a title query scans 100,000 books in the worker): where a
    # second worker pays off on two cores, unlike the read-mostly load above
    work = replace(base, workload="mix:query_title=100", books=100_000, clients=8,
                   duration=max(seconds, 4.0))  # at ~100 requests/s: enough of them
    plan += [replace(work, workers=1), replace(work, workers=2)]
    lost = replace(base, workload="hot-spot", hot=1, clients=16)
    plan += [replace(lost, unsafe_no_lock=True), lost]
    # what a fault costs: clients that retry (Lazy Pirate) through one of each kind
    plan.append(replace(base, duration=max(seconds, 10.0), timeout=0.5, retries=10,
                        faults=DEMO_FAULTS))
    return plan


def _progress(number: int, total: int, outcome: RunOutcome) -> None:
    row = summary_row(outcome.summary)
    print(f"[{number:2}/{total}] {row['name']:<50} {row['throughput']:>8,.0f} req/s  "
          f"p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  "
          f"anomalies {row['violations']}", flush=True)


TITLES = {"en": "libsrv: the default experiment", "es": "libsrv: el experimento por defecto"}


def run_demo(out: Path, seconds: float = DEMO_SECONDS, rounds: int = DEMO_ROUNDS,
             lang: str = "en") -> Path:
    """Run the default plan in `rounds` interleaved rounds and write the report (in `lang`,
    "en" or "es") to `out`; returns its path."""
    runs = out / "runs" / time.strftime("%Y%m%d-%H%M%S")
    plan = default_plan(seconds)
    print(f"Running {len(plan)} experiments {rounds} times each, interleaved ({seconds:g} s "
          f"each, each on its own server); results go to {runs}", flush=True)
    run_rounds(plan, rounds, runs, progress=False, on_run=_progress)
    report = write_report([runs], out, title=TITLES.get(lang, TITLES["en"]), lang=lang)
    print(f"\nReport: {report}")
    return report
