"""``python -m libsrv_bench compare``: configurations side by side, as ratios to the
transport's limit.

Shared machines are noisy, so absolute figures move from minute to minute. This runs the
reference and each candidate in interleaved rounds (reference, candidates..., reference, ...)
and reports per-round ratios and their median with its spread: the figures to quote.

The reference is the transport's own limit for the server's shape: libzmq's C proxy in front of
as many REP echo workers as the server has workers (a bare REP echo for ``--workers 0``). Every
row uses the same load processes, so the load generator is the same for all of them. Each
round also drives the reference with an independent lean generator (`libsrv_bench.lean`, one
process per client): when bench's own reaches less than GENERATOR_FLOOR of it, bench's generator
set the reference's pace and the command says so.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from libsrv_bench.dialects import DEFAULT_DIALECT
from libsrv_bench.judgement import reasons_in
from libsrv_bench.lean import LeanResult, lean_throughput
from libsrv_bench.rounds import describe as describe_config
from libsrv_bench.rounds import enough
from libsrv_bench.runner import RunConfig, RunOutcome, catalog_copy, run_experiment, server_command
from libsrv_bench.settings import DEFAULT_DURATION

REFERENCE = "reference"
CALIBRATION = "reference, lean generator"  # the same target, one process per client


# an echo is the kit's, started here, in the kit's protocol, whatever the server rows speak
_KIT_TARGET = {"dialect": DEFAULT_DIALECT, "catalog": None, "endpoint": None, "target": ""}


def transport_reference(base: RunConfig) -> RunConfig:
    """The transport's limit for `base`'s shape: libzmq's proxy with the same workers, or a
    bare REP echo when `base` is a single REP server."""
    return replace(base, echo="proxy", label="", **_KIT_TARGET)


def baseline_candidates(base: RunConfig) -> dict[str, RunConfig]:
    """The other limits worth a row: a bare REP echo, and the kit's broker in front of echo
    workers (what the broker costs, apart from the catalog)."""
    if base.workers == 0:
        return {}
    return {"bare REP echo": replace(base, echo="proxy", workers=0, label="", **_KIT_TARGET),
            f"kit broker + {base.workers} echo workers": replace(base, echo="broker",
                                                                 label="", **_KIT_TARGET)}


def describe(config: RunConfig) -> str:
    """A row's name: the echo as the report names it, a server by its shape and size."""
    if config.echo or config.endpoint:
        return describe_config(config)
    shape = "single REP" if config.workers == 0 else f"broker + {config.workers} workers"
    return f"server {config.storage}, {shape}, {config.books:,} books"


def _row(number: int, name: str, summary: dict[str, Any]) -> dict[str, Any]:
    cost, load = summary.get("cost", {}), summary.get("load", {})
    server = cost.get("server_cpu_us_per_request")
    gateway = summary.get("gateway", {}).get("cpu_us_per_request")
    if server is not None and gateway is not None:
        server += gateway  # the class's gateway is part of the server side it measures
    return {"round": number, "name": name, "throughput": summary["throughput"],
            "p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"],
            "requests": summary.get("requests"),
            "violations": summary["violations"],
            "server_cpu_us": server, "gateway_cpu_us": gateway,
            # why the run was not clean (the judgement's words; empty: clean, or an echo)
            "not_clean": "; ".join(summary.get("not_clean") or []),
            "not_clean_es": "; ".join(reasons_in(summary, "es")),  # the same, for the class
            "load_cpu_us": load.get("cpu_us_per_request"),
            "load_loop": load.get("loop"),  # which loop drove the clients (client_loop)
            "proxy_cpu_us": summary.get("proxy", {}).get("cpu_us_per_request"),
            "machine_busy": cost.get("machine_busy"),
            "load_saturated": load.get("saturated")}


def calibrate(reference: RunConfig) -> LeanResult:
    """The reference driven by the independent lean generator (one process per client), as
    long and with as many clients as bench drives it."""
    with tempfile.TemporaryDirectory(prefix="bench-calibrate-") as scratch:
        db = catalog_copy(reference.books, reference.seed, Path(scratch))
        with server_command(reference, db) as server:
            return lean_throughput(server.endpoint, reference.clients,
                                   reference.duration or DEFAULT_DURATION)


def compare(reference: RunConfig, candidates: dict[str, RunConfig], *, rounds: int = 3,
            out: Path | str = "report/compare", progress: bool = False,
            calibration: bool = True,
            on_run: Callable[[int, int, RunOutcome], None] | None = None) -> pd.DataFrame:
    """Each candidate's throughput and p99 as ratios to `reference` of the same round, over
    `rounds` interleaved rounds. With `calibration` and an echo as the reference, each round
    also drives the reference with the lean generator: its row's `generator_ratio` is bench's
    throughput over the lean generator's (below GENERATOR_FLOOR, bench's generator set the
    reference's pace).
    `on_run(number, total, outcome)` is called after each bench run, as in `run_rounds`."""
    rows: list[dict[str, Any]] = []
    total, done = rounds * (1 + len(candidates)), 0

    def ran(config: RunConfig) -> dict[str, Any]:
        nonlocal done
        outcome = run_experiment(config, out, progress=progress)
        done += 1
        if on_run is not None:
            on_run(done, total, outcome)
        return outcome.summary

    for number in range(rounds):
        ref = ran(replace(reference, label=f"{REFERENCE}-r{number}"))
        rows.append(_row(number, REFERENCE, ref))
        # only an echo answers the lean generator's one fixed request as it answers bench's
        # workload; against a server, the two would be measuring different requests
        if calibration and reference.echo and not reference.endpoint:
            lean = calibrate(reference)
            rows.append({"round": number, "name": CALIBRATION, "throughput": lean.throughput,
                         "load_cpu_us": lean.cpu_us_per_request, "violations": 0,
                         "lean_clients": reference.clients, "load_loop": lean.loop,
                         "generator_ratio": ref["throughput"] / lean.throughput
                         if lean.throughput else float("nan")})
        for name, config in candidates.items():
            label = f"{name.replace(' ', '_').replace(',', '')}-r{number}"
            got = ran(replace(config, label=label))
            row = _row(number, name, got)
            row["throughput_ratio"] = got["throughput"] / ref["throughput"] \
                if ref["throughput"] else float("nan")
            row["p99_ratio"] = got["p99_ms"] / ref["p99_ms"] if ref["p99_ms"] else float("nan")
            rows.append(row)
    return pd.DataFrame(rows)


def _median(values: pd.Series) -> float:
    clean = [v for v in values if v is not None and v == v]
    return statistics.median(clean) if clean else float("nan")


def p99_enough(group: pd.DataFrame) -> bool:
    """Whether every round of a configuration had the requests to measure its p99 (rounds
    that do not say how many they had are taken at their word)."""
    counts = group.get("requests", [])
    return all(enough(int(n), 99) for n in counts if n is not None and n == n)


def medians(table: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: medians over the rounds, and the ratios' spread (min-max)."""
    out = []
    for name, group in table.groupby("name", sort=False):
        row: dict[str, Any] = {"name": name, "rounds": len(group),
                               "throughput": _median(group["throughput"]),
                               "p99_ms": _median(group["p99_ms"]),
                               "p99_enough": p99_enough(group),
                               "server_cpu_us": _median(group["server_cpu_us"]),
                               "load_cpu_us": _median(group["load_cpu_us"]),
                               "gateway_cpu_us": _median(group["gateway_cpu_us"]),
                               "not_clean": "; ".join(sorted(
                                   {r for r in group["not_clean"] if isinstance(r, str) and r})),
                               "proxy_cpu_us": _median(group["proxy_cpu_us"]),
                               "machine_busy": _median(group["machine_busy"])}
        if name == CALIBRATION:
            ratio = group["generator_ratio"]
            row["generator_ratio"] = _median(ratio)
            row["ratio_spread"] = f"{ratio.min():.2f}-{ratio.max():.2f}"
            row["lean_clients"] = int(group["lean_clients"].iloc[0])  # its processes
            row["lean_loop"] = group["load_loop"].iloc[0]
        elif name != REFERENCE:
            ratio = group["throughput_ratio"]
            row["throughput_ratio"] = _median(ratio)
            row["ratio_spread"] = f"{ratio.min():.2f}-{ratio.max():.2f}"
            row["p99_ratio"] = _median(group["p99_ratio"])
            row["violations"] = int(group["violations"].sum())
        out.append(row)
    return pd.DataFrame(out)
