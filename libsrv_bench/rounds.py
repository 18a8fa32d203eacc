"""Repeated runs: run a plan in interleaved rounds, and summarise each configuration over them.

A shared machine's figures move from minute to minute, so one short run is an anecdote. A plan
run in rounds (every configuration once per round, rounds one after the other) spreads that
drift over all configurations alike; each configuration is then reported by its median over the
rounds and its spread (the lowest and highest round).

`runs_frame` reads run folders into one row per run; `aggregate` turns those into one row per
configuration. Both work on any run folders, also those made one at a time with ``bench run``.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pandas as pd

from libsrv.defaults import DEFAULT_TRANSPORT, TRANSPORT_TITLES
from libsrv_bench.runner import RunOutcome, run_experiment, summary_row
from libsrv_bench.settings import DEFAULTS, RunConfig, run_name

# the figures reported as median and spread over rounds
METRICS = ("throughput", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "server_cpu_us",
           "load_cpu_us", "machine_busy", "throughput_vs_echo", "p99_vs_echo")
# a percentile is shown as measured only when at least this many requests lie beyond it
TAIL_SAMPLES = 10
PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p99_ms": 99.0, "p999_ms": 99.9}


def run_rounds(plan: Sequence[RunConfig], rounds: int, out: Path | str, *,
               progress: bool = True,
               on_run: Callable[[int, int, RunOutcome], None] | None = None) -> list[Path]:
    """Run every configuration of `plan` once per round, `rounds` times; the run folders.

    `on_run(number, total, outcome)` is called after each run (for progress lines)."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    folders: list[Path] = []
    total = rounds * len(plan)
    for _ in range(rounds):
        for config in plan:
            outcome = run_experiment(config, out, progress=progress)
            folders.append(outcome.folder)
            if on_run is not None:
                on_run(len(folders), total, outcome)
    return folders


def config_of(summary: dict[str, Any]) -> RunConfig:
    """The RunConfig stored in a run's summary (settings it predates keep their default)."""
    known = {f.name for f in fields(RunConfig)}
    return RunConfig(**{k: v for k, v in summary["config"].items() if k in known})


def config_key(config: RunConfig, *, ignoring: str | None = None) -> str:
    """A name shared by the runs of one configuration (its label aside); with `ignoring`, also
    shared by configurations that differ only in that setting."""
    if ignoring is not None:
        config = replace(config, **{ignoring: getattr(DEFAULTS, ignoring)})
    return run_name(replace(config, label=""))


_DESCRIBE = {
    "en": {"process": "{n} process", "processes": "{n} processes", "one": "one process",
           "stack_echo": "{stack} echo, {processes}", "bare": "bare REP echo",
           "limit": "libzmq proxy + {n} echo workers", "broker": "kit broker + {n} echo workers",
           "raw": "raw TCP echo, one process", "client": "{n} client", "clients": "{n} clients",
           "theirs": "{name} ({dialect} protocol), {clients}, {workload}",
           "single": "single REP", "worker": "{n} worker", "workers": "{n} workers",
           "nolock": ", NO LOCK"},
    "es": {"process": "{n} proceso", "processes": "{n} procesos", "one": "un proceso",
           "stack_echo": "eco {stack}, {processes}", "bare": "eco REP solo",
           "limit": "proxy de libzmq + {n} trabajadores eco",
           "broker": "broker del kit + {n} trabajadores eco",
           "raw": "eco TCP crudo, un proceso", "client": "{n} cliente",
           "clients": "{n} clientes",
           "theirs": "{name} (protocolo {dialect}), {clients}, {workload}",
           "single": "un solo REP", "worker": "{n} trabajador", "workers": "{n} trabajadores",
           "nolock": ", SIN CERROJO"},
}


def describe(config: RunConfig, lang: str = "en") -> str:
    """A configuration in words, as the report's tables and legends name it (in `lang`, "en"
    or "es")."""
    words = _DESCRIBE["es" if lang == "es" else "en"]

    def count(n: int, one: str, many: str) -> str:
        return words[one if n == 1 else many].format(n=n)

    processes = count(config.workers, "process", "processes") if config.workers \
        else words["one"]
    stack = TRANSPORT_TITLES[config.transport]
    if config.echo == "proxy" and config.transport != DEFAULT_TRANSPORT:
        return words["stack_echo"].format(stack=stack, processes=processes)
    if config.echo == "proxy":
        return words["bare"] if config.workers == 0 else \
            words["limit"].format(n=config.workers)
    if config.echo == "broker":
        return words["broker"].format(n=config.workers)
    if config.echo == "raw":
        return words["raw"]
    clients = count(config.clients, "client", "clients")
    if config.endpoint:
        return words["theirs"].format(name=config.target or config.endpoint,
                                      dialect=config.dialect, clients=clients,
                                      workload=config.workload)
    shape = words["single"] if config.workers == 0 else \
        count(config.workers, "worker", "workers")
    if config.transport != DEFAULT_TRANSPORT:
        shape = f"{stack}, {processes}"
    lock = words["nolock"] if config.unsafe_no_lock else ""
    return f"{config.storage}{lock}, {shape}, {clients}, {config.workload}"


def find_runs(paths: Iterable[Path | str]) -> list[Path]:
    """Run folders among `paths`, and below them (a folder of runs counts for each run)."""
    runs: list[Path] = []
    for path in map(Path, paths):
        if (path / "summary.json").exists():
            runs.append(path)
        elif path.is_dir():
            runs += sorted(p.parent for p in path.rglob("summary.json"))
    return runs


def runs_frame(runs: Sequence[Path]) -> pd.DataFrame:
    """One row per run: its settings and figures, its configuration's key and words, its round
    (1 for a configuration's first run, by start time), and its ratios to the transport's
    limit of the same round when that was measured."""
    rows = []
    for folder in runs:
        summary = json.loads((folder / "summary.json").read_text())
        config = config_of(summary)
        row = summary_row(summary)
        key = config_key(config)
        if config.endpoint and not config.target:
            # someone else's server with no --name: another run at that endpoint may be
            # another server, so it is never taken for a round of this one
            key = f"{key}-{summary.get('run_id', folder.name)}"
        row.update(folder=str(folder), key=key, label=describe(config),
                   echo=config.echo, storage=config.storage, duration=config.duration,
                   processes=config.processes, started_at=summary.get("started_at", ""),
                   command=summary.get("command", ""), cpus=summary["machine"].get("cpus"),
                   config=config)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame = frame.sort_values(["started_at", "folder"], kind="stable").reset_index(drop=True)
    frame["round"] = frame.groupby("key").cumcount() + 1
    frame["throughput_vs_echo"], frame["p99_vs_echo"] = _ratios(frame)
    return frame


def _shape(row: pd.Series) -> tuple[Any, ...]:
    return (row["workers"], row["clients"], row["books"], row["duration"], row["processes"])


def _ratios(frame: pd.DataFrame) -> tuple[list[float], list[float]]:
    """Each server run against the transport's limit with the same shape, round by round:
    ZeroMQ's (libzmq's proxy in front of echo workers), never another stack's echo."""
    limits = {(_shape(row), row["round"]): row for _, row in frame.iterrows()
              if row["echo"] == "proxy" and row["config"].transport == "zmq"
              and not row["config"].gateway}
    throughput, p99 = [], []
    for _, row in frame.iterrows():
        limit = limits.get((_shape(row), row["round"])) if not row["echo"] else None
        if limit is None or not limit["throughput"] or not limit["p99_ms"]:
            throughput.append(float("nan"))
            p99.append(float("nan"))
        else:
            throughput.append(row["throughput"] / limit["throughput"])
            p99.append(row["p99_ms"] / limit["p99_ms"])
    return throughput, p99


def _clean(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and v == v]


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: `<metric>` is the median over its rounds, `<metric>_lo` and
    `<metric>_hi` the lowest and highest round; `rounds`, `requests_min` (the fewest requests
    in a round), `violations` (all rounds) and `violations_per_round`; `<p>_enough` says
    whether every round had enough requests for that percentile (TAIL_SAMPLES beyond it)."""
    rows = []
    for key, group in frame.groupby("key", sort=False):
        first = group.iloc[0]
        row: dict[str, Any] = {
            "key": key, "label": first["label"], "config": first["config"],
            "target": first["target"], "echo": first["echo"], "storage": first["storage"],
            # another server's workers and lock are not the bench's: None in its rows
            "unsafe": bool(first["unsafe"]),
            "workers": None if pd.isna(first["workers"]) else int(first["workers"]),
            "clients": int(first["clients"]), "workload": first["workload"],
            "books": int(first["books"]), "rounds": len(group),
            "requests_min": int(group["requests"].min()),
            "requests": int(group["requests"].sum()),
            "violations": int(group["violations"].sum()),
            "violations_per_round": [int(v) for v in group["violations"]],
            "timeouts": int(group["timeouts"].sum()), "errors": int(group["errors"].sum()),
            "commands": sorted(set(group["command"])), "folders": list(group["folder"]),
            "cpus": first["cpus"]}
        for metric in METRICS:
            values = _clean(group[metric]) if metric in group else []
            row[metric] = statistics.median(values) if values else float("nan")
            row[f"{metric}_lo"] = min(values) if values else float("nan")
            row[f"{metric}_hi"] = max(values) if values else float("nan")
        for metric, percentile in PERCENTILES.items():
            row[f"{metric}_enough"] = enough(row["requests_min"], percentile)
        rows.append(row)
    return pd.DataFrame(rows)


def enough(requests: int, percentile: float) -> bool:
    """Whether `requests` samples measure `percentile`: TAIL_SAMPLES of them lie beyond it."""
    return requests * (1 - percentile / 100) >= TAIL_SAMPLES


def varied_groups(table: pd.DataFrame, setting: str, *,
                  servers_only: bool = True) -> list[pd.DataFrame]:
    """Every group of configurations that differ only in `setting` (at least two values), each
    ordered by it, the largest first."""
    rows = table[table["echo"] == ""] if servers_only else table
    if rows.empty:
        return []
    keys = rows["config"].map(lambda c: config_key(c, ignoring=setting))
    groups = [g for _, g in rows.groupby(keys, sort=False)
              if g["config"].map(lambda c: getattr(c, setting)).nunique() > 1]
    ordered = []
    for group in sorted(groups, key=len, reverse=True):
        order = group["config"].map(lambda c: getattr(c, setting))
        ordered.append(group.assign(_order=order.astype(str) if setting == "storage" else order)
                       .sort_values("_order").drop(columns="_order"))
    return ordered


def varied(table: pd.DataFrame, setting: str, *, servers_only: bool = True) -> pd.DataFrame:
    """The largest group of configurations that differ only in `setting` (at least two
    values), ordered by it; empty when the runs never vary it alone."""
    groups = varied_groups(table, setting, servers_only=servers_only)
    if not groups:
        rows = table[table["echo"] == ""] if servers_only else table
        return rows.iloc[0:0]
    return groups[0]
